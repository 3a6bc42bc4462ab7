import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const TEMPORAL_BIN = path.join(ROOT, '.tools/bin/temporal');

/** What the shared integration stack tells the tests (vitest `provide`/`inject`). */
export interface StackInfo {
  apiUrl: string;
  /** Bearer token the API accepts (`HODEI_API_TOKENS`), with every scope. */
  apiToken: string;
  /** Tokens the API accepts with one scope each (`<token>:read` …). */
  scopedTokens: Record<'read' | 'submit' | 'cancel', string>;
  temporalAddress: string;
  temporalUiUrl: string;
  namespace: string;
  taskQueue: string;
  instanceId: string;
  dataDir: string;
  workerPid: number;
  /** The worker's Prometheus endpoint (`HODEI_WORKER_METRICS_PORT`). */
  workerMetricsUrl: string;
  /** The codec endpoint the Web UI decodes payloads with (`HODEI_CODEC_PORT`). */
  codecUrl: string;
  /** The payload codec key (`HODEI_CODEC_KEY`, base64), for tests' own Temporal clients. */
  codecKey: string;
}

export interface RunningStack {
  info: StackInfo;
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
  startWorker(): Promise<number>;
  stopWorker(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts a whole platform for tests: a real Temporal dev server (in memory), one worker bound to
 * the real Docker engine, and the API, on free loopback ports, with its own installation id so
 * its containers never mix with another stack's.
 */
export async function startStack(options: { capacity?: number; env?: Record<string, string> } = {}): Promise<RunningStack> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hodei-test-'));
  const [temporalPort, uiPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const instanceId = `test-${randomUUID().slice(0, 8)}`;
  const temporalAddress = `127.0.0.1:${temporalPort}`;
  const apiToken = `test-token-${randomUUID()}`;
  const scopedTokens = { read: `test-read-${randomUUID()}`, submit: `test-submit-${randomUUID()}`, cancel: `test-cancel-${randomUUID()}` };
  const workerMetricsPort = await freePort();
  const codecPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: temporalAddress,
    TEMPORAL_NAMESPACE: 'default',
    HODEI_TASK_QUEUE: `hodei-test-${instanceId}`,
    HODEI_API_PORT: String(apiPort),
    HODEI_API_TOKENS: [apiToken, ...Object.entries(scopedTokens).map(([scope, token]) => `${token}:${scope}`)].join(','),
    HODEI_WORKER_METRICS_PORT: String(workerMetricsPort),
    // Every payload in Temporal encrypted, with a key of this stack's own.
    HODEI_CODEC_KEY: randomBytes(32).toString('base64'),
    HODEI_CODEC_PORT: String(codecPort),
    HODEI_TEMPORAL_UI_URL: `http://127.0.0.1:${uiPort}`,
    HODEI_DATA_DIR: dataDir,
    HODEI_INSTANCE_ID: instanceId,
    HODEI_WORKER_CAPACITY: String(options.capacity ?? 12),
    HODEI_LOG_LEVEL: process.env.HODEI_LOG_LEVEL ?? 'info',
    // Quiet log streams get a keep-alive comment every second, so tests see them.
    HODEI_SSE_KEEPALIVE_SECONDS: '1',
    // A fast reaper, so tests see orphans go within seconds.
    HODEI_REAPER_INTERVAL_SECONDS: '2',
    HODEI_REAPER_GRACE_SECONDS: '3',
    // Allowed but never built: jobs naming it show how a missing image fails.
    HODEI_ALLOWED_IMAGES: 'hodei-worker:latest,hodei-test-missing:*',
    // Settings a test's own stack overrides.
    ...options.env,
  };
  const children: ChildProcess[] = [];
  const logFile = (name: string) => openSync(path.join(dataDir, `${name}.log`), 'a');
  const launch = (name: string, command: string, args: string[]) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', logFile(name), logFile(name)] });
    children.push(child);
    return child;
  };

  launch('temporal', TEMPORAL_BIN, [
    'server', 'start-dev', '--ip', '127.0.0.1', '--port', String(temporalPort), '--ui-port', String(uiPort),
    '--http-port', String(await freePort()), '--metrics-port', String(await freePort()),
    '--log-level', 'warn', '--ui-disable-news-fetch',
    // The Web UI decodes payloads with the API's codec endpoint (CORS for the UI's origin).
    '--ui-codec-endpoint', `http://127.0.0.1:${codecPort}`,
    // One partition per task queue: queued jobs are dispatched in the order they were queued.
    '--dynamic-config-value', 'matching.numTaskqueueReadPartitions=1',
    '--dynamic-config-value', 'matching.numTaskqueueWritePartitions=1',
  ]);
  execFileSync('bash', [path.join(ROOT, 'scripts/temporal-init.sh')], { env, stdio: 'inherit' });

  let worker: ChildProcess | undefined;
  const startWorker = async () => {
    worker = launch('worker', process.execPath, ['--import', 'tsx', 'worker/main.ts']);
    return worker.pid!;
  };
  const stopWorker = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const w = worker;
    if (!w || w.exitCode !== null) return;
    const exited = new Promise((resolve) => w.once('exit', resolve));
    w.kill(signal);
    await exited;
  };
  await startWorker();
  launch('api', process.execPath, ['--import', 'tsx', 'api/main.ts']);

  const apiUrl = `http://127.0.0.1:${apiPort}`;
  await waitFor('the test stack to be ready', async () => {
    for (const child of children) {
      if (child.exitCode !== null) throw new Error(`${child.spawnargs.join(' ')} exited; logs in ${dataDir}`);
    }
    const res = await fetch(`${apiUrl}/readyz`);
    return res.ok ? true : undefined;
  }, { timeoutMs: 120_000, intervalMs: 250 });

  return {
    info: {
      apiUrl,
      apiToken,
      scopedTokens,
      temporalAddress,
      temporalUiUrl: `http://127.0.0.1:${uiPort}`,
      namespace: 'default',
      taskQueue: env.HODEI_TASK_QUEUE!,
      instanceId,
      dataDir,
      workerPid: worker!.pid!,
      workerMetricsUrl: `http://127.0.0.1:${workerMetricsPort}/metrics`,
      codecUrl: `http://127.0.0.1:${codecPort}`,
      codecKey: env.HODEI_CODEC_KEY!,
    },
    env,
    startWorker,
    stopWorker,
    async stop() {
      await Promise.all(
        children.reverse().map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGTERM');
              setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
            }),
        ),
      );
      if (!process.env.HODEI_KEEP_TEST_DATA) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
