import type { Server as HttpServer } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../domain/config.js';
import { listenOrExit, writePortsFile } from '../domain/listen.js';
import { createLogger } from '../domain/logger.js';
import { AesGcmPayloadCodec, CODEC_KEY_FILE, codecKeys } from '../domain/payload-codec.js';
import { openLogStore } from '../log-store/open-log-store.js';
import { LogRetention } from '../log-store/retention.js';
import { openArtifactStore } from '../artifact-store/open-artifact-store.js';
import { createApp } from './app.js';
import { apiTokens, TOKEN_FILE } from './auth.js';
import { answerClientErrors } from './http-errors.js';
import { serveCodec } from './codec-server.js';
import { workflowFinished } from './logs.js';

const config = loadConfig();
const logger = createLogger('api', config.HODEI_LOG_LEVEL, config.HODEI_LOG_FORMAT);
const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
// Every payload the API puts in Temporal (a job's input with its secrets, its memo) is encrypted.
const payloadCodec = new AesGcmPayloadCodec(codecKeys(config));
if (!config.HODEI_CODEC_KEY)
  logger.info(
    { file: `${config.HODEI_DATA_DIR}/${CODEC_KEY_FILE}` },
    'no HODEI_CODEC_KEY: using the key in the data dir',
  );
const client = new Client({
  connection,
  namespace: config.TEMPORAL_NAMESPACE,
  dataConverter: { payloadCodecs: [payloadCodec] },
});
const logStore = await openLogStore(config, { onError: (err) => logger.warn({ err }, 'log store connection') });
const tokens = apiTokens(config);
if (config.HODEI_API_TOKENS.length === 0)
  logger.info(
    { file: `${config.HODEI_DATA_DIR}/${TOKEN_FILE}` },
    'no HODEI_API_TOKENS: using the token in the data dir',
  );
// Aborted at shutdown: live log streams send a final `shutdown` event and end.
const shuttingDown = new AbortController();
const artifactStore = openArtifactStore(config);
const app = createApp({ client, logStore, artifactStore, config, logger, tokens, shutdown: shuttingDown.signal });
// Logs and artifacts go when the job's Temporal record does (the same retention period).
const retentionOf = (store: ConstructorParameters<typeof LogRetention>[0], what: string) =>
  new LogRetention(store, {
    retentionMs: config.HODEI_RETENTION_DAYS * 24 * 3600 * 1000,
    intervalMs: config.HODEI_LOG_SWEEP_INTERVAL_SECONDS * 1000,
    isFinished: (id) => workflowFinished(client, id),
    onError: (err) => logger.error({ err }, `${what} retention sweep failed`),
  });
const retention = retentionOf(logStore, 'log');
retention.start();
const artifactRetention = retentionOf(artifactStore, 'artifact');
artifactRetention.start();

const server = createAdaptorServer({ fetch: app.fetch });
// HTTP-level errors (bad Content-Length, huge headers) answered in the one error shape.
answerClientErrors(server as HttpServer);
// A port in use ends the API with a message naming the setting (npm start shows it).
const apiPort = await listenOrExit(server, {
  port: config.HODEI_API_PORT,
  host: config.HODEI_API_HOST,
  setting: 'HODEI_API_PORT',
  logger,
});
logger.info({ url: `http://${config.HODEI_API_HOST}:${apiPort}`, port: apiPort }, 'api listening');

// The Web UI's codec endpoint. Here rather than in the worker: one per installation's API (the
// process people reach), not one per Docker host, and a worker never serves HTTP by default.
const codec =
  config.HODEI_CODEC_PORT === 'off'
    ? undefined
    : await serveCodec({
        codec: payloadCodec,
        allowedOrigins: config.HODEI_CODEC_CORS_ORIGINS,
        port: config.HODEI_CODEC_PORT,
        logger,
      });
const codecServer = codec?.server;
await writePortsFile(config.HODEI_PORTS_FILE, { api: apiPort, ...(codec ? { codec: codec.port } : {}) });

// What a request still running at shutdown gets before its connection is cut, and the most a
// shutdown takes before the process exits anyway.
const SHUTDOWN_GRACE_MS = 2000;
const SHUTDOWN_DEADLINE_MS = 5000;

const shutdown = (signal: NodeJS.Signals) => {
  if (shuttingDown.signal.aborted) return;
  logger.info({ signal }, 'api shutting down');
  shuttingDown.abort();
  retention.stop();
  artifactRetention.stop();
  setTimeout(() => {
    logger.warn('api did not stop in time: exiting');
    process.exit(1);
  }, SHUTDOWN_DEADLINE_MS).unref();
  const servers = [server, codecServer].filter((s) => s !== undefined) as HttpServer[];
  const cut = setTimeout(() => servers.forEach((s) => s.closeAllConnections()), SHUTDOWN_GRACE_MS);
  let open = servers.length;
  for (const s of servers) {
    s.close(() => {
      open -= 1;
      if (open > 0) return;
      clearTimeout(cut);
      void connection
        .close()
        .finally(() => Promise.all([logStore.close(), artifactStore.close()]))
        .finally(() => logger.info('api stopped'));
    });
  }
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
