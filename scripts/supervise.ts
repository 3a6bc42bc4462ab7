/**
 * `npm start`'s supervisor (scripts/start.sh runs it once set-up is done): runs the Temporal dev
 * server (its database in the data dir), one worker bound to the local Docker engine, and the
 * HTTP API, and keeps them running.
 *
 * - A part that dies unexpectedly is started again, after a pause that doubles while it keeps
 *   dying (1 s up to 30 s; back to 1 s once it ran a minute): Temporal on the same data dir, so
 *   its jobs go on. During start-up a part that dies stops everything (it would die again).
 * - Ctrl-C, SIGTERM or SIGHUP stops the API and the worker first, then Temporal, each SIGKILLed if
 *   it has not exited within STOP_DEADLINE_MS; a second signal kills them at once. Job containers
 *   keep running: the next start's worker takes them up again.
 * - The data dir is 0700 and what the parts create in it 0600 (umask 077): it holds the API
 *   token, the codec key and every job's output.
 *
 * The parts run in process groups of their own, so a terminal's Ctrl-C reaches this process only
 * and the stop goes in order. Logs: this process's and the parts' on stdout (readable lines on a
 * terminal, JSON when piped; HODEI_LOG_FORMAT), Temporal's in <data dir>/temporal.log.
 */
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, fstatSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, loadConfig, type Config } from '../domain/config.js';
import { createLogger } from '../domain/logger.js';
import { Part, type PartHost } from './part.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const TEMPORAL_CLI = path.join(ROOT, '.tools/bin/temporal');
const STOP_DEADLINE_MS = 10_000;
const START_DEADLINE_MS = 180_000;
const DEFAULT_TEMPORAL_ADDRESS = '127.0.0.1:7233';

type PartName = 'temporal' | 'worker' | 'api';

// Every file the parts create is for this user only (the data dir holds secrets).
process.umask(0o077);

// The settings every part gets: the defaults of `npm start` where the environment sets none.
const env: NodeJS.ProcessEnv = { ...process.env };
env.TEMPORAL_ADDRESS ||= DEFAULT_TEMPORAL_ADDRESS;
env.HODEI_DATA_DIR ||= path.join(ROOT, 'data');
let config: Config;
try {
  config = loadConfig(env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`[start] ${err.message}`);
  process.exit(1);
}
// The web page links to the UI, and the codec endpoint lets only the UI's origin in (CORS).
env.HODEI_TEMPORAL_UI_URL ||= `http://127.0.0.1:${config.HODEI_TEMPORAL_UI_PORT}`;
config = loadConfig(env);
const dataDir = config.HODEI_DATA_DIR;
mkdirSync(dataDir, { recursive: true, mode: 0o700 });
// A data dir made before (by an older version, or by hand) is closed to others too.
chmodSync(dataDir, 0o700);

const logger = createLogger('start', config.HODEI_LOG_LEVEL, config.HODEI_LOG_FORMAT);
const temporalLog = path.join(dataDir, 'temporal.log');
const [temporalHost, temporalPort] = splitAddress(config.TEMPORAL_ADDRESS);

// Each part is restarted when it dies once start-up is done; during start-up its death stops everything.
const partHost: PartHost = {
  logger,
  stopping: () => stopping,
  running: () => running,
  onStartupExit: (part, message) => void fail(message, part.name as PartName),
};

const node = (script: string) => () =>
  spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
  });

/** Where this start's part of temporal.log begins (it is appended to across starts). */
let temporalLogStart = 0;
const temporal = new Part(
  'temporal',
  () => {
    const out = openSync(temporalLog, 'a', 0o600);
    temporalLogStart = fstatSync(out).size;
    // The one launcher of the dev server (its flags shared with the test stack); it execs the server.
    const child = spawn(
      'bash',
      [
        path.join(ROOT, 'scripts/temporal-dev.sh'),
        '--ip',
        temporalHost,
        '--port',
        temporalPort,
        '--ui-port',
        String(config.HODEI_TEMPORAL_UI_PORT),
        '--db-filename',
        path.join(dataDir, 'temporal.db'),
        // The Web UI decodes payloads (encrypted in Temporal) with the API's codec endpoint.
        ...(config.HODEI_CODEC_PORT === 'off'
          ? []
          : ['--ui-codec-endpoint', `http://127.0.0.1:${config.HODEI_CODEC_PORT}`]),
      ],
      { cwd: ROOT, env, stdio: ['ignore', out, out], detached: true },
    );
    closeSync(out);
    return child;
  },
  partHost,
);
const worker = new Part('worker', node('worker/main.ts'), partHost);
const api = new Part('api', node('api/main.ts'), partHost);
const parts = [temporal, worker, api];

let running = false;
let stopping = false;

/** Stops the API and the worker, then Temporal (which they talk to while they stop). */
async function stopAll(): Promise<void> {
  stopping = true;
  await Promise.all([api.stop(STOP_DEADLINE_MS), worker.stop(STOP_DEADLINE_MS)]);
  await temporal.stop(STOP_DEADLINE_MS);
}

async function fail(message: string, part?: PartName): Promise<never> {
  if (stopping) return new Promise<never>(() => undefined);
  logger.fatal({ part }, message);
  if (part === 'temporal') {
    const log = readSince(temporalLog, temporalLogStart);
    // The dev server exits at once on a port in use: say which setting to change.
    const inUse = log.split('\n').find((line) => /address already in use/i.test(line)) ?? '';
    if (inUse.includes(`:${temporalPort}:`))
      logger.fatal(
        `${config.TEMPORAL_ADDRESS} is in use (another npm start?): set TEMPORAL_ADDRESS to another host:port`,
      );
    else if (inUse.includes(`:${config.HODEI_TEMPORAL_UI_PORT}:`))
      logger.fatal(
        `the Web UI port ${config.HODEI_TEMPORAL_UI_PORT} is in use: set HODEI_TEMPORAL_UI_PORT to another port`,
      );
    else console.error(`[start] the end of ${temporalLog}:\n${log.trimEnd().split('\n').slice(-20).join('\n')}`);
  }
  await stopAll();
  process.exit(1);
}

let signals = 0;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: killing every part now');
      for (const part of parts) part.kill();
      process.exit(130);
    }
    logger.info({ signal }, 'stopping');
    const started = Date.now();
    void stopAll().then(() => {
      logger.info({ ms: Date.now() - started }, 'stopped');
      process.exit(0);
    });
  });
}
// Whatever ends this process, no part outlives it (short of a SIGKILL of this one).
process.on('exit', () => {
  for (const part of parts) part.kill();
});

temporal.start();
await runToEnd('temporal-init', 'bash', [path.join(ROOT, 'scripts/temporal-init.sh')]);
worker.start();
api.start();
await waitForApi();
if (!stopping) {
  running = true;
  printBanner();
}

/** Runs a set-up step to its end; a failure (or Temporal dying meanwhile) stops everything. */
async function runToEnd(name: string, command: string, args: string[]): Promise<void> {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'inherit'] });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) await fail(`${name} failed (exit code ${code})`, temporal.pid === undefined ? 'temporal' : undefined);
}

async function waitForApi(): Promise<void> {
  const url = `http://${urlHost(config.HODEI_API_HOST)}:${config.HODEI_API_PORT}/readyz`;
  const deadline = Date.now() + START_DEADLINE_MS;
  while (!stopping) {
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(5000) })).ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) await fail(`the API was not ready within ${START_DEADLINE_MS / 1000} s (${url})`);
    await sleep(500);
  }
}

function printBanner(): void {
  const apiUrl = `http://${urlHost(config.HODEI_API_HOST)}:${config.HODEI_API_PORT}`;
  const tokenFile = path.join(dataDir, 'api-token');
  const codec = config.HODEI_CODEC_PORT === 'off' ? undefined : `http://127.0.0.1:${config.HODEI_CODEC_PORT}`;
  // The bare CLI reaches localhost:7233 in the default namespace; say which flags reach this stack.
  const flags = [
    ...(['127.0.0.1:7233', 'localhost:7233'].includes(config.TEMPORAL_ADDRESS)
      ? []
      : ['--address', config.TEMPORAL_ADDRESS]),
    ...(config.TEMPORAL_NAMESPACE === 'default' ? [] : ['--namespace', config.TEMPORAL_NAMESPACE]),
  ].join(' ');
  const cli = TEMPORAL_CLI;
  const lines = [
    '',
    '  Hodei Jobs is running.',
    `    API:              ${apiUrl}   (try: curl -s ${apiUrl}/readyz)`,
    config.HODEI_API_TOKENS.length > 0
      ? '    API token:        one of HODEI_API_TOKENS'
      : `    API token:        ${readFileSync(tokenFile, 'utf8').trim()}   (kept in ${tokenFile})\n` +
        `      (try: curl -s -H "Authorization: Bearer $(cat ${tokenFile})" ${apiUrl}/jobs)`,
    `    Temporal Web UI:  http://${urlHost(temporalHost)}:${config.HODEI_TEMPORAL_UI_PORT}` +
      (codec
        ? `   (payloads decoded by ${codec}, loopback only)`
        : '   (payloads shown encrypted: HODEI_CODEC_PORT=off)'),
    flags
      ? `    temporal CLI:     ${cli} <command> ${flags}   (reaches ${config.TEMPORAL_ADDRESS})`
      : `    temporal CLI:     ${cli}   (reaches ${config.TEMPORAL_ADDRESS} with no flags)`,
    ...(codec ? [`                      add --codec-endpoint ${codec} to read payloads`] : []),
    `    Data:             ${dataDir}   (Temporal's log: ${temporalLog})`,
    '  Ctrl-C stops it; job containers keep running and the next start takes them up again.',
    '',
  ];
  console.error(lines.join('\n'));
  logger.info(
    { api: apiUrl, temporal: config.TEMPORAL_ADDRESS, pids: Object.fromEntries(parts.map((p) => [p.name, p.pid])) },
    'hodei jobs is running',
  );
}

function splitAddress(address: string): [string, string] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), address.slice(colon + 1)];
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function readSince(file: string, offset: number): string {
  try {
    return readFileSync(file).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}
