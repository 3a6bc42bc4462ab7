/**
 * Shared pieces of the benchmarks: the API client by URL (the test client reads it from
 * vitest's `inject`), Docker helpers, percentiles, and result output. Benchmarks
 * print figures and write JSON; they never fail on a timing.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { createApiClient, type ApiClient as GeneratedClient, type JobSpec, type JobView } from '../api-client/index.js';
import { isTerminal, type JobState } from '../domain/job-state.js';
import { claimedJob } from '../activities/warm-pool.js';
import { LABEL_INSTANCE, LABEL_JOB_ID, LABEL_POOL } from '../domain/container-labels.js';
import { ROOT } from '../test/support/stack.js';

export { sleep };
export const now = () => performance.now();
export const docker = new Docker();
export const WORKER_IMAGE = process.env.HODEI_WORKER_IMAGE ?? 'hodei-worker:latest';
export const RUNS = positiveInt('BENCH_RUNS', 20);

/** Label put on the bare baseline containers, so a crashed bench's leftovers can be found. */
export const BENCH_LABEL = 'hodei-bench';

export function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return value;
}

export type { JobView };

/** The platform's HTTP API, by URL, over the generated client. */
export class ApiClient {
  private readonly api: GeneratedClient;

  constructor(
    readonly baseUrl: string,
    token: string,
  ) {
    this.api = createApiClient({ baseUrl, token });
  }

  async submit(spec: JobSpec): Promise<JobView> {
    const { data, error, response } = await this.api.POST('/jobs', { body: spec });
    if (response.status !== 201 || !data)
      throw new Error(`POST /jobs answered ${response.status}: ${JSON.stringify(error)}`);
    return data;
  }

  async job(id: string): Promise<JobView> {
    const { data, error, response } = await this.api.GET('/jobs/{id}', { params: { path: { id } } });
    if (response.status !== 200 || !data)
      throw new Error(`GET /jobs/${id} answered ${response.status}: ${JSON.stringify(error)}`);
    return data;
  }

  async logs(id: string): Promise<string> {
    const { data, error, response } = await this.api.GET('/jobs/{id}/logs', {
      params: { path: { id } },
      parseAs: 'text',
    });
    if (response.status !== 200 || data === undefined)
      throw new Error(`GET /jobs/${id}/logs answered ${response.status}: ${JSON.stringify(error)}`);
    return data;
  }

  async cancel(id: string): Promise<void> {
    const { error, response } = await this.api.POST('/jobs/{id}/cancel', { params: { path: { id } } });
    if (response.status !== 202)
      throw new Error(`POST /jobs/${id}/cancel answered ${response.status}: ${JSON.stringify(error)}`);
  }

  /** Polls the job's logs until `done(text)`; resolves with `now()` at the poll that saw it. */
  async waitForLogs(
    id: string,
    done: (text: string) => boolean,
    { intervalMs = 5, timeoutMs = 60_000 } = {},
  ): Promise<number> {
    return pollUntil(`logs of job ${id}`, async () => done(await this.logs(id)), intervalMs, timeoutMs);
  }

  /** Polls the job until it is in `state`; throws if it ends otherwise. Resolves with `now()`. */
  async waitForState(id: string, state: JobState, { intervalMs = 5, timeoutMs = 60_000 } = {}): Promise<number> {
    return pollUntil(
      `job ${id} to be ${state}`,
      async () => {
        const job = await this.job(id);
        if (job.state === state) return true;
        if (isTerminal(job.state))
          throw new Error(`job ${id} ended ${job.state} (${job.reason ?? ''}), expected ${state}`);
        return false;
      },
      intervalMs,
      timeoutMs,
    );
  }
}

/** Polls `check` back to back with `intervalMs` between polls; resolves with `now()` at the first true. */
export async function pollUntil(
  what: string,
  check: () => Promise<boolean>,
  intervalMs: number,
  timeoutMs: number,
): Promise<number> {
  const deadline = now() + timeoutMs;
  for (;;) {
    if (await check()) return now();
    if (now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Containers with all these labels, in any state. */
export function containersWith(labels: string[]): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: labels } });
}

/** A job's containers (this stack's installation only), in any state: labelled, or a warm pool's it claimed (by name). */
export async function jobContainers(instanceId: string, jobId: string): Promise<Docker.ContainerInfo[]> {
  const [labelled, pooled] = await Promise.all([
    containersWith([`${LABEL_JOB_ID}=${jobId}`, `${LABEL_INSTANCE}=${instanceId}`]),
    docker.listContainers({
      all: true,
      filters: { name: [`hodei-${jobId}-`], label: [LABEL_POOL, `${LABEL_INSTANCE}=${instanceId}`] },
    }),
  ]);
  return [...labelled, ...pooled.filter((c) => c.Names.some((n) => claimedJob(n)?.jobId === jobId))];
}

/** Polls `docker ps -a` by labels until nothing matches; resolves with `now()` at that poll. */
export function waitForNoContainer(labels: string[], { intervalMs = 5, timeoutMs = 60_000 } = {}): Promise<number> {
  return pollUntil(
    `containers ${labels.join(',')} to be gone`,
    async () => (await containersWith(labels)).length === 0,
    intervalMs,
    timeoutMs,
  );
}

export interface ProcessTiming {
  /** ms from spawn to the first stdout byte (undefined if it printed nothing). */
  firstStdoutMs?: number;
  /** ms from spawn to exit. */
  exitMs: number;
  stdout: string;
}

/** Runs a command, timing its first stdout byte and its exit; throws on a non-zero exit. */
export function timeProcess(command: string, args: string[]): Promise<ProcessTiming> {
  return new Promise((resolve, reject) => {
    const started = now();
    let firstStdoutMs: number | undefined;
    let stdout = '';
    let stderr = '';
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => {
      firstStdoutMs ??= now() - started;
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const exitMs = now() - started;
      if (code !== 0) reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.trim()}`));
      else resolve({ firstStdoutMs, exitMs, stdout });
    });
  });
}

/** Removes whatever bare baseline containers this bench run left behind. */
export async function removeBenchContainers(runId: string): Promise<void> {
  for (const info of await containersWith([`${BENCH_LABEL}=${runId}`])) {
    await docker
      .getContainer(info.Id)
      .remove({ force: true, v: true })
      .catch(() => undefined);
  }
}

export interface Summary {
  n: number;
  median: number;
  p95: number;
  min: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of unsorted samples. */
/**
 * Latency sampling while a burst runs: calls `call` with a random id of those in `ids` (which the
 * caller keeps filling), one call in flight, `gapMs` apart, until `stop()`, which resolves with
 * every call's time and the count of calls that threw.
 */
export function sampleLatency(
  ids: readonly string[],
  call: (id: string, k: number) => Promise<unknown>,
  gapMs = 10,
): { stop: () => Promise<{ samplesMs: number[]; errors: number }> } {
  const samplesMs: number[] = [];
  let errors = 0;
  let sampling = true;
  const loop = (async () => {
    for (let k = 0; sampling;) {
      if (ids.length === 0) {
        await sleep(5);
        continue;
      }
      const id = ids[Math.floor(Math.random() * ids.length)]!;
      const start = now();
      try {
        await call(id, k++);
        samplesMs.push(now() - start);
      } catch {
        errors += 1;
      }
      await sleep(gapMs);
    }
  })();
  return {
    stop: async () => {
      sampling = false;
      await loop;
      return { samplesMs, errors };
    },
  };
}

export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? NaN;
}

export function summarize(samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n === 0 ? NaN : n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return {
    n,
    median,
    p95: percentile(sorted, 95),
    min: sorted[0] ?? NaN,
    max: sorted[n - 1] ?? NaN,
    mean: n === 0 ? NaN : sorted.reduce((a, b) => a + b, 0) / n,
  };
}

const ms = (value: number) => (Number.isFinite(value) ? `${value.toFixed(0)} ms` : '—');

/** Prints one table: a row per measurement with n, median, p95, min, max. */
export function printTable(title: string, rows: Record<string, Summary>): void {
  const width = Math.max(...Object.keys(rows).map((k) => k.length), 32);
  console.log(`\n${title}`);
  console.log(
    `  ${'measurement'.padEnd(width)}  ${'n'.padStart(3)}  ${'median'.padStart(9)}  ${'p95'.padStart(9)}  ${'min'.padStart(9)}  ${'max'.padStart(9)}`,
  );
  for (const [name, s] of Object.entries(rows)) {
    console.log(
      `  ${name.padEnd(width)}  ${String(s.n).padStart(3)}  ${ms(s.median).padStart(9)}  ${ms(s.p95).padStart(9)}  ${ms(s.min).padStart(9)}  ${ms(s.max).padStart(9)}`,
    );
  }
}

/** One goal line: what was measured against what was aimed for. Informational only. */
export function goalLine(text: string, met: boolean): string {
  return `  ${met ? 'met    ' : 'NOT met'}  ${text}`;
}

/** Writes the run's figures to bench/results/<name>-<timestamp>.json and says where. */
export function writeResults(name: string, data: unknown): string {
  const dir = path.join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

/** Facts about the run that help read its numbers later. */
export async function environment(): Promise<Record<string, unknown>> {
  const os = await import('node:os');
  const version = await docker.version().catch(() => undefined);
  return {
    node: process.version,
    cpus: os.cpus().length,
    loadavg: os.loadavg(),
    dockerVersion: version?.Version,
    image: WORKER_IMAGE,
  };
}

/** Runs `main` and makes sure `cleanup` runs on success, failure and Ctrl-C. */
export function runBench(main: () => Promise<void>, cleanup: () => Promise<void>): void {
  let cleaning: Promise<void> | undefined;
  const clean = () => (cleaning ??= cleanup().catch((err: unknown) => console.error('cleanup failed:', err)));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping the stack`);
      void clean().then(() => process.exit(130));
    });
  }
  main()
    .then(clean, async (err: unknown) => {
      console.error(err);
      await clean();
      process.exitCode = 1;
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
}

export interface BareContainer {
  container: Docker.Container;
  /** Its `hodei-bench.id` label value. */
  key: string;
  /** Labels that match this container only. */
  labels: string[];
}

/**
 * Starts a bare container like a job's (same image, `--init` forwarding signals to the process
 * group, no network) running `script`, and waits until it printed `ready`. The baseline for
 * cancel → gone: what Docker alone needs to stop and remove such a container.
 */
export async function startBareContainer(runId: string, script: string): Promise<BareContainer> {
  const key = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const labels = { [BENCH_LABEL]: runId, [`${BENCH_LABEL}.id`]: key };
  const container = await docker.createContainer({
    Image: WORKER_IMAGE,
    Cmd: ['bash', '-c', script],
    Env: ['TINI_KILL_PROCESS_GROUP=1'],
    Labels: labels,
    HostConfig: { NetworkMode: 'none', Init: true },
  });
  await container.start();
  await pollUntil(
    'the bare container to print ready',
    async () => {
      const out = await container.logs({ stdout: true, stderr: true, follow: false });
      return out.toString().includes('ready');
    },
    20,
    30_000,
  );
  return { container, key, labels: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
}

/** Stops (SIGTERM, SIGKILL after `graceSeconds`) and removes a bare container; ms until `docker ps -a` no longer lists it. */
export async function bareStopAndRemove(
  bare: BareContainer,
  graceSeconds: number,
): Promise<{ started: number; goneMs: number }> {
  const started = now();
  await bare.container.stop({ t: graceSeconds });
  await bare.container.remove();
  return { started, goneMs: (await waitForNoContainer(bare.labels)) - started };
}

/** Wall-clock ms (epoch) of a `now()` reading, to line up with Docker's event timestamps. */
export const epochOf = (t: number) => performance.timeOrigin + t;

export interface ContainerEvent {
  action: string;
  /** Epoch ms, from the daemon's clock (same machine). */
  at: number;
}

/**
 * Records Docker's container events (create, start, kill, die, destroy…) for containers carrying
 * `label`, keyed by the value of `keyLabel`: where a latency goes, without adding polls.
 */
export class ContainerEvents {
  private readonly events = new Map<string, ContainerEvent[]>();
  private stream?: NodeJS.ReadableStream & { destroy?: () => void };

  private constructor(private readonly keyLabel: string) {}

  static async watch(label: string, keyLabel: string): Promise<ContainerEvents> {
    const watcher = new ContainerEvents(keyLabel);
    const stream = (await docker.getEvents({
      filters: { type: ['container'], label: [label] },
    })) as NodeJS.ReadableStream & { destroy?: () => void };
    watcher.stream = stream;
    let buffered = '';
    stream.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line)
          watcher.add(
            JSON.parse(line) as { Action?: string; timeNano?: number; Actor?: { Attributes?: Record<string, string> } },
          );
      }
    });
    stream.on('error', () => undefined);
    return watcher;
  }

  private add(event: { Action?: string; timeNano?: number; Actor?: { Attributes?: Record<string, string> } }): void {
    const attributes = event.Actor?.Attributes ?? {};
    // A claimed warm pool container carries no job id: its name (after the rename) says the job.
    const key =
      attributes[this.keyLabel] ??
      (this.keyLabel === LABEL_JOB_ID && attributes[LABEL_POOL] ? claimedJob(attributes.name ?? '')?.jobId : undefined);
    if (!key || !event.Action || event.timeNano === undefined) return;
    // `exec_start: …` and similar carry a suffix; keep the verb.
    const action = event.Action.split(':')[0]!;
    const list = this.events.get(key) ?? [];
    list.push({ action, at: event.timeNano / 1e6 });
    this.events.set(key, list);
  }

  /** ms from epoch `since` to the first `action` event of `key`, or undefined if none (yet). */
  firstAfter(key: string, action: string, since: number): number | undefined {
    const event = this.events.get(key)?.find((e) => e.action === action);
    return event ? event.at - since : undefined;
  }

  /** Every event recorded so far, by key. */
  all(): ReadonlyMap<string, readonly ContainerEvent[]> {
    return this.events;
  }

  /** Waits a little for late events to arrive (the stream lags the API slightly). */
  async settle(key: string, action: string, timeoutMs = 1000): Promise<void> {
    const deadline = now() + timeoutMs;
    while (!this.events.get(key)?.some((e) => e.action === action) && now() < deadline) await sleep(10);
  }

  close(): void {
    this.stream?.destroy?.();
  }
}

/** A progress note overwritten in place on a terminal; silent when output goes to a file. */
export function progress(text: string, done = false): void {
  if (!process.stdout.isTTY) return;
  process.stdout.write(`\r  ${text}${done ? '\n' : ''}`);
}

/** Runs `task` over `items` with at most `limit` in flight; results in input order. */
export async function pool<T, R>(
  items: T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}
