import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { LABEL_INSTANCE } from '../../domain/container-labels.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const TEMPORAL_BIN = path.join(ROOT, '.tools/bin/temporal');
/** The one launcher of the Temporal dev server (its flags), shared with `npm start`. */
export const TEMPORAL_DEV = path.join(ROOT, 'scripts/temporal-dev.sh');

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
  /** `HODEI_DATA_DIR` of the API and worker (log store, keys; `temporal.db` when persistent). */
  dataDir: string;
  /** Where each component logs (`temporal.log`, `api.log`, `worker.log`); `dataDir` unless a data dir was given. */
  logDir: string;
  /** PID of the stack's current worker process. */
  workerPid: number;
  /** The worker's Prometheus endpoint (`HODEI_WORKER_METRICS_PORT`). */
  workerMetricsUrl: string;
  /** The codec endpoint the Web UI decodes payloads with (`HODEI_CODEC_PORT`). */
  codecUrl: string;
  /** The payload codec key (`HODEI_CODEC_KEY`, base64), for tests' own Temporal clients. */
  codecKey: string;
}

export interface StackOptions {
  /** `HODEI_WORKER_CAPACITY` (default 12). */
  capacity?: number;
  /** Settings of the API and worker over the stack's own (`HODEI_INSTANCE_ID` and `HODEI_CODEC_KEY` included). */
  env?: Record<string, string>;
  /**
   * `HODEI_DATA_DIR` of the caller's (a small tmpfs, or a previous stack's): the stack never
   * removes it. Default: a temporary dir of the stack's own, removed by `stop`.
   */
  dataDir?: string;
  /** Temporal keeps its state in `<dataDir>/temporal.db` (default: in memory), so it survives `killTemporal`. */
  persistent?: boolean;
  /** Most time the whole start-up may take, retries included (default 150 s). */
  startTimeoutMs?: number;
}

export type StackComponent = 'temporal' | 'api' | 'worker';

export interface RunningStack {
  info: StackInfo;
  /** The settings the API and worker run with (real ports), for a test's own extra processes. */
  env: NodeJS.ProcessEnv;
  /** Stops every process, removes the stack's containers (`hodei.instance=<id>`) and its temporary dirs. */
  stop(): Promise<void>;
  /** Starts the worker (again) on the same metrics port; resolves with its PID once it listens. */
  startWorker(): Promise<number>;
  stopWorker(signal?: NodeJS.Signals): Promise<void>;
  /** Ends the Temporal dev server with `signal` (SIGKILL plays a crash) and waits for it to exit. */
  killTemporal(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the Temporal dev server again on the same ports (and data, when persistent); resolves once it serves. */
  startTemporal(): Promise<void>;
  /** Ends the API with `signal` and waits for it to exit. */
  killApi(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the API again at the same URL (and codec port); resolves once `/healthz` answers 200. */
  startApi(): Promise<void>;
  /** The last `lines` lines a component logged. */
  logTail(component: StackComponent, lines?: number): Promise<string>;
  /** PID of a component's current process, if it runs (benches sample its memory). */
  pid(component: StackComponent): number | undefined;
}

const TAIL_LINES = 40;

/** Thrown when a port was taken before a server could bind it: the launch may be tried again. */
class PortInUse extends Error {
  override name = 'PortInUse';
}

/** A child process of the stack, logging stdout and stderr to `<logDir>/<name>.log` (appended across restarts). */
class Component {
  private child?: ChildProcess;
  private exited: Promise<void> = Promise.resolve();
  /** Where the current run's output starts in the log. */
  private logStart = 0;

  constructor(
    readonly name: StackComponent,
    readonly logPath: string,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return (
      this.child !== undefined &&
      this.child.exitCode === null &&
      this.child.signalCode === null &&
      this.child.pid !== undefined
    );
  }

  async spawn(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
    this.logStart = (await stat(this.logPath).catch(() => ({ size: 0 }))).size;
    const log = await open(this.logPath, 'a');
    try {
      const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', log.fd, log.fd] });
      this.child = child;
      // 'error' alone when it could not be spawned at all.
      this.exited = new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.once('error', () => resolve());
      });
    } finally {
      await log.close();
    }
  }

  /** What the current run logged so far. */
  async runLog(): Promise<string> {
    return (await readFile(this.logPath).catch(() => Buffer.alloc(0))).subarray(this.logStart).toString('utf8');
  }

  async tail(lines = TAIL_LINES): Promise<string> {
    const text = await readFile(this.logPath, 'utf8').catch(() => '');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** An error saying what went wrong, with the end of the component's log. */
  async failure(what: string): Promise<Error> {
    return new Error(`${what}\n--- last ${TAIL_LINES} lines of ${this.logPath} ---\n${await this.tail()}\n---`);
  }

  /** Why the current run ended, if it ended: `PortInUse` when its log says a port was taken. */
  async exitError(): Promise<Error | undefined> {
    if (this.running) return undefined;
    const how = this.child?.signalCode
      ? `signal ${this.child.signalCode}`
      : `code ${this.child?.exitCode ?? '(not started)'}`;
    const err = await this.failure(`${this.name} exited (${how}) while starting`);
    return /EADDRINUSE|address already in use/i.test(await this.runLog()) ? new PortInUse(err.message) : err;
  }

  /** Ends the process (SIGKILL after `graceMs`) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill(signal);
    const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(killer);
  }
}

/**
 * Polls `check` until it returns a value; fails at once, with the component's log, when one of
 * `watched` exits, and after `deadline` (epoch ms) with the logs of all of them.
 */
async function waitOrFail<T>(
  what: string,
  watched: Component[],
  deadline: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  for (;;) {
    for (const component of watched) {
      const err = await component.exitError();
      if (err) throw err;
    }
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      const tails = await Promise.all(watched.map((c) => c.failure(`(${c.name})`)));
      throw new Error(`timed out waiting for ${what}\n${tails.map((e) => e.message).join('\n')}`);
    }
    await sleep(100);
  }
}

/** Reads a `HODEI_PORTS_FILE` (domain/listen.ts): there once every server of the process listens. */
async function readPorts(file: string): Promise<Record<string, number> | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Record<string, number>;
  } catch {
    return undefined;
  }
}

/**
 * Ports for a server that cannot be asked for port 0 (the Temporal dev server, PostgreSQL) and report the port it got.
 * Drawn at random from below the system's ephemeral range: the system never hands those out for
 * port 0 or outgoing connections, so only another launcher's draw or a fixed service can hold
 * one, and then the server exits at once and the launch is tried again with other ports.
 */
export async function candidatePorts(count: number): Promise<number[]> {
  const range = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => '32768 60999');
  const ephemeralLow = Number(range.trim().split(/\s+/)[0]) || 32768;
  const [low, high] = ephemeralLow > 12_000 ? [10_000, ephemeralLow] : [ephemeralLow + 1, 65_535];
  const ports = new Set<number>();
  while (ports.size < count) ports.add(randomInt(low, high));
  return [...ports];
}

/** The engine `DOCKER_HOST` names (the machine's default one when unset). */
function dockerOf(env: NodeJS.ProcessEnv): Docker {
  const host = env.DOCKER_HOST;
  return host?.startsWith('unix://') ? new Docker({ socketPath: host.slice('unix://'.length) }) : new Docker();
}

/** Removes every container of the installation `instanceId`; an engine that is gone holds none. */
export async function removeContainers(env: NodeJS.ProcessEnv, instanceId: string): Promise<void> {
  const docker = dockerOf(env);
  try {
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_INSTANCE}=${instanceId}`] } });
    await Promise.all(
      left.map((c) =>
        docker
          .getContainer(c.Id)
          .remove({ force: true, v: true })
          .catch(() => undefined),
      ),
    );
  } catch {
    // Unreachable engine: nothing of ours runs on it.
  }
}

/** Runs a script to its end; rejects with its output on a non-zero exit. `cancel` kills its process group. */
function runScript(script: string, env: NodeJS.ProcessEnv): { done: Promise<void>; cancel(): void } {
  const child = spawn('bash', [script], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${path.basename(script)} failed (${signal ?? `code ${code}`}): ${output.trim()}`)),
    );
  });
  return {
    done,
    cancel: () => {
      if (child.exitCode === null && child.signalCode === null && child.pid) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    },
  };
}

/**
 * Starts a whole platform for tests: a real Temporal dev server (in memory unless `persistent`),
 * one worker bound to the real Docker engine, and the API, on loopback, with its own
 * installation id so its containers never mix with another stack's.
 *
 * No port is picked and then bound later by someone else: the API, the codec endpoint and the
 * worker's metrics bind port 0 and report the port they got (`HODEI_PORTS_FILE`); the Temporal
 * dev server, which cannot, gets candidate ports and is launched again with others if it could
 * not bind them. The codec port is one of those candidates too, since the Web UI must be told it
 * before the API binds it. Restarts (`startTemporal`, `startApi`, `startWorker`) reuse the ports
 * the stack already owns, retrying while the old socket lingers.
 *
 * Nothing here blocks the test worker (no synchronous child process). A component that fails to
 * start fails the start-up with the end of its log, after everything started so far was stopped
 * and the stack's containers and temporary dirs were removed.
 */
export async function startStack(options: StackOptions = {}): Promise<RunningStack> {
  const deadline = Date.now() + (options.startTimeoutMs ?? 150_000);
  const runDir = await mkdtemp(path.join(tmpdir(), 'hodei-test-'));
  const dataDir = options.dataDir ?? runDir;
  await mkdir(dataDir, { recursive: true });
  const logDir = runDir;
  const instanceId = options.env?.HODEI_INSTANCE_ID ?? `test-${randomUUID().slice(0, 8)}`;
  const apiToken = `test-token-${randomUUID()}`;
  const scopedTokens = {
    read: `test-read-${randomUUID()}`,
    submit: `test-submit-${randomUUID()}`,
    cancel: `test-cancel-${randomUUID()}`,
  };
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_NAMESPACE: 'default',
    HODEI_TASK_QUEUE: `hodei-test-${instanceId}`,
    HODEI_API_PORT: '0',
    HODEI_API_TOKENS: [apiToken, ...Object.entries(scopedTokens).map(([scope, token]) => `${token}:${scope}`)].join(
      ',',
    ),
    HODEI_WORKER_METRICS_PORT: '0',
    // Every payload in Temporal encrypted, with a key of this stack's own.
    HODEI_CODEC_KEY: randomBytes(32).toString('base64'),
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
    // A worker killed by a test may take over a minute to poll again on a loaded machine: its jobs
    // wait for it (reattach) rather than count as lost at the default 60 s. Tests of host loss
    // set their own.
    HODEI_HOST_LOSS_SECONDS: '600',
    // Settings a test's own stack overrides.
    ...options.env,
  };
  delete env.HODEI_PORTS_FILE;
  const temporal = new Component('temporal', path.join(logDir, 'temporal.log'));
  const api = new Component('api', path.join(logDir, 'api.log'));
  const worker = new Component('worker', path.join(logDir, 'worker.log'));
  const components = { temporal, api, worker };
  // The ports the stack owns once they are bound.
  const ports = { temporal: 0, ui: 0, codec: 0, api: 0, metrics: 0 };
  const setPorts = (update: Partial<typeof ports>) => {
    Object.assign(ports, update);
    Object.assign(env, {
      TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`,
      HODEI_TEMPORAL_UI_URL: `http://127.0.0.1:${ports.ui}`,
      HODEI_CODEC_PORT: String(ports.codec),
      ...(ports.api ? { HODEI_API_PORT: String(ports.api) } : {}),
    });
  };

  /** Launches the dev server on the stack's Temporal ports; resolves once its namespace is ready. */
  const launchTemporal = async (by: number) => {
    await temporal.spawn(
      'bash',
      [
        TEMPORAL_DEV,
        '--ip',
        '127.0.0.1',
        '--port',
        String(ports.temporal),
        '--ui-port',
        String(ports.ui),
        // The Web UI decodes payloads with the API's codec endpoint (CORS for the UI's origin).
        '--ui-codec-endpoint',
        `http://127.0.0.1:${ports.codec}`,
        ...(options.persistent ? ['--db-filename', path.join(dataDir, 'temporal.db')] : []),
      ],
      env,
    );
    // Waits for the server, then sets the namespace up (again, after an in-memory restart).
    const init = runScript(path.join(ROOT, 'scripts/temporal-init.sh'), env);
    let result: 'done' | Error | undefined;
    init.done.then(
      () => (result = 'done'),
      (err: Error) => (result = err),
    );
    try {
      await waitOrFail(`the Temporal dev server on ${env.TEMPORAL_ADDRESS}`, [temporal], by, async () => result);
    } finally {
      init.cancel();
    }
    if (result instanceof Error) throw (await temporal.exitError()) ?? (await temporal.failure(result.message));
  };

  /** Launches a Node component; resolves with the ports it reports once every server of it listens. */
  const launchNode = async (component: Component, entry: string, extraEnv: NodeJS.ProcessEnv, by: number) => {
    const portsFile = path.join(logDir, `${component.name}.ports.json`);
    await rm(portsFile, { force: true });
    await component.spawn(process.execPath, ['--import', 'tsx', entry], {
      ...env,
      ...extraEnv,
      HODEI_PORTS_FILE: portsFile,
    });
    return waitOrFail(`the ${component.name} to listen`, [component], by, () => readPorts(portsFile));
  };

  /** Runs `launch` again while the port it needs is still held (the old process's socket lingering). */
  const onOwnedPorts = async (launch: (by: number) => Promise<void>, component: Component) => {
    // Generous: a worker bundles its workflow code before it listens, over a minute on a loaded machine.
    const by = Date.now() + 180_000;
    for (;;) {
      try {
        return await launch(by);
      } catch (err) {
        if (!(err instanceof PortInUse) || Date.now() > by - 5_000) throw err;
        await component.stop('SIGKILL');
        await sleep(500);
      }
    }
  };

  const launchApi = async (by: number) => {
    const reported = await launchNode(
      api,
      'api/main.ts',
      { HODEI_API_PORT: String(ports.api), HODEI_CODEC_PORT: String(ports.codec) },
      by,
    );
    setPorts({ api: reported.api! });
  };
  const launchWorker = async (by: number) => {
    const reported = await launchNode(
      worker,
      'worker/main.ts',
      { HODEI_WORKER_METRICS_PORT: String(ports.metrics) },
      by,
    );
    ports.metrics = reported.metrics!;
  };

  const info: StackInfo = {
    apiUrl: '',
    apiToken,
    scopedTokens,
    temporalAddress: '',
    temporalUiUrl: '',
    namespace: 'default',
    taskQueue: env.HODEI_TASK_QUEUE!,
    instanceId,
    dataDir,
    logDir,
    workerPid: 0,
    workerMetricsUrl: '',
    codecUrl: '',
    codecKey: env.HODEI_CODEC_KEY!,
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all([api.stop(), worker.stop()]);
    await temporal.stop();
    await removeContainers(env, instanceId);
    if (!process.env.HODEI_KEEP_TEST_DATA) await rm(runDir, { recursive: true, force: true });
  };

  const startWorker = async () => {
    await onOwnedPorts(launchWorker, worker);
    info.workerPid = worker.pid!;
    info.workerMetricsUrl = `http://127.0.0.1:${ports.metrics}/metrics`;
    return worker.pid!;
  };

  try {
    // Temporal and the API together: the codec port the Web UI is told is a candidate too.
    for (let attempt = 1; ; attempt++) {
      const [temporalPort, uiPort, codecPort] = await candidatePorts(3);
      setPorts({ temporal: temporalPort, ui: uiPort, codec: codecPort, api: 0 });
      try {
        await launchTemporal(deadline);
        await launchApi(deadline);
        break;
      } catch (err) {
        // Another launch on the same ports, or Temporal dying as it starts: try other ports.
        const retry = err instanceof PortInUse || (await temporal.exitError()) !== undefined;
        if (!retry || attempt >= 5) throw err;
        await Promise.all([api.stop('SIGKILL'), temporal.stop('SIGKILL')]);
      }
    }
    Object.assign(info, {
      apiUrl: `http://127.0.0.1:${ports.api}`,
      temporalAddress: env.TEMPORAL_ADDRESS,
      temporalUiUrl: env.HODEI_TEMPORAL_UI_URL,
      codecUrl: `http://127.0.0.1:${ports.codec}`,
    });
    await startWorker();
    await waitOrFail('the test stack to be ready (a worker polling)', [temporal, api, worker], deadline, async () => {
      const res = await fetch(`${info.apiUrl}/readyz`, { signal: AbortSignal.timeout(5_000) });
      await res.body?.cancel();
      return res.ok ? true : undefined;
    });
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    info,
    env,
    stop,
    startWorker,
    stopWorker: (signal = 'SIGTERM') => worker.stop(signal),
    killTemporal: (signal = 'SIGKILL') => temporal.stop(signal),
    startTemporal: () => onOwnedPorts(launchTemporal, temporal),
    killApi: (signal = 'SIGKILL') => api.stop(signal),
    startApi: async () => {
      await onOwnedPorts(launchApi, api);
      await waitOrFail(`the API at ${info.apiUrl} to reach Temporal`, [api], Date.now() + 60_000, async () => {
        const res = await fetch(`${info.apiUrl}/healthz`, { signal: AbortSignal.timeout(5_000) });
        await res.body?.cancel();
        return res.ok ? true : undefined;
      });
    },
    logTail: (component, lines) => components[component].tail(lines),
    pid: (component) => components[component].pid,
  };
}
