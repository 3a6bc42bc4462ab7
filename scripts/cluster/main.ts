/**
 * `npm run cluster` (scripts/cluster.sh runs it once set-up is done): starts the cluster
 * (scripts/cluster/cluster.ts), prints what runs where, and keeps it running until Ctrl-C,
 * SIGTERM or SIGHUP, which stop every part it started (a second signal kills them at once).
 * Settings: HODEI_API_PORT (the first replica; the second takes the next port), HODEI_INSTANCE_ID
 * (default `cluster`: the run dir `.tools/cluster/<id>/`, kept across runs), and every other
 * HODEI_* setting, passed to the APIs and workers.
 */
import { ConfigError, loadConfig } from '../../domain/config.js';
import { createLogger } from '../../domain/logger.js';
import { startCluster, type RunningCluster } from './cluster.js';

process.umask(0o077);
let config;
try {
  config = loadConfig({ ...process.env, HODEI_INSTANCE_ID: process.env.HODEI_INSTANCE_ID || 'cluster' });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`[cluster] ${err.message}`);
  process.exit(1);
}
const logger = createLogger('cluster', config.HODEI_LOG_LEVEL, config.HODEI_LOG_FORMAT);
if (config.HODEI_API_PORT === 65535) {
  logger.fatal('HODEI_API_PORT is the first of two ports: set it below 65535');
  process.exit(1);
}

let cluster: RunningCluster | undefined;
let signals = 0;
let stopping: Promise<void> | undefined;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: killing every part now');
      for (const part of cluster?.parts.values() ?? []) part.kill();
      process.exit(130);
    }
    logger.info({ signal }, 'stopping');
    const started = Date.now();
    stopping = (cluster?.stop() ?? Promise.resolve()).then(() => {
      logger.info({ ms: Date.now() - started }, 'stopped');
      process.exit(0);
    });
  });
}

try {
  cluster = await startCluster({
    instanceId: config.HODEI_INSTANCE_ID,
    apiPort: config.HODEI_API_PORT,
    env: { ...process.env, HODEI_INSTANCE_ID: config.HODEI_INSTANCE_ID },
    output: 'inherit',
    logger,
  });
} catch (err) {
  if (stopping) await stopping;
  logger.fatal({ err }, 'the cluster did not start');
  process.exit(1);
}
if (stopping) await stopping;
// A signal during start-up found no cluster to stop yet: stop it now.
if (signals > 0) {
  await cluster.stop();
  process.exit(0);
}

const { info } = cluster;
const token = info.apiToken || 'one of HODEI_API_TOKENS';
const cli = `.tools/bin/temporal --address ${info.temporalAddress}`;
console.error(
  [
    '',
    '  Hodei Jobs cluster is running (docs/cluster.md).',
    `    API replicas:     ${info.apiUrls.join('  ')}   (either serves every job)`,
    `    API token:        ${token}`,
    `      (try: curl -s -H "Authorization: Bearer ${info.apiToken || '$TOKEN'}" ${info.apiUrls[0]}/jobs)`,
    `    Temporal:         ${info.temporalAddress}   (frontend, history, matching, worker: four processes)`,
    `    temporal CLI:     ${cli} workflow list   (add --codec-endpoint to read payloads)`,
    `    Temporal Web UI:  ${info.temporalUiUrl}`,
    `    S3 (artifacts):   ${info.s3.endpoint}/${info.s3.bucket}   (versitygw; every host and replica)`,
    `    PostgreSQL:       ${info.postgresUrl.replace(/\/postgres$/, '')}   (Temporal, its visibility, the logs)`,
    ...info.hosts.map(
      (h) =>
        `    host ${h.name}:           ${h.address} in netns ${h.netns}, engine ${h.dockerHost}, link ${h.veth}` +
        `   (cut it: ip link set ${h.veth} down)`,
    ),
    `    PIDs:             ${Object.entries(info.pids)
      .map(([name, pid]) => `${name}=${pid}`)
      .join(' ')}`,
    `    Data and logs:    ${info.runDir}   (state.json: what runs where, PIDs kept current)`,
    '  Kill any one part and it is started again; Ctrl-C stops them all.',
    '',
  ].join('\n'),
);
logger.info({ apis: info.apiUrls, temporal: info.temporalAddress, pids: info.pids }, 'hodei jobs cluster is running');
