/**
 * Log streaming benchmark (issue 3). On its own stack (log cap 256 MiB, above what is printed):
 *   latency:    a job printing its clock (`date +%s%N`) every 50 ms, BENCH_LOG_LINES lines (default
 *               200); an SSE client of GET /jobs/:id/logs/stream, connected before the job starts,
 *               takes receive time minus print time per line (same machine clock). Baseline in the
 *               same run: the same script under a bare `docker run` whose stdout the bench reads.
 *   throughput: 50 MB in 100-byte lines (`yes … | head -n 500000`): submit → the SSE client has
 *               every line and the end event, against a bare `docker run` of the same script with
 *               its output to /dev/null; BENCH_LOG_RUNS rounds (default 3), alternating.
 *               The throughput part runs on the SQLite log store, then on a PostgreSQL of the
 *               bench's own (started as test/postgres does), reported apart, with the peak RSS of
 *               the API and the worker and the load average.
 * BENCH_LOG_ONLY=latency or =throughput runs one part only; BENCH_LOG_STORES=sqlite (or postgres)
 * one store only; BENCH_LOG_CPU_PROF=<dir> has the API and worker write CPU profiles there.
 * Prints medians, p95 and ratios; writes JSON to bench/results/. Never fails on a timing.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import path from 'node:path';
import { createParser } from 'eventsource-parser';
import { startPostgres, type PostgresServer } from '../test/support/postgres.js';
import { startStack, type RunningStack } from '../test/support/stack.js';
import {
  ApiClient,
  environment,
  goalLine,
  now,
  positiveInt,
  printTable,
  runBench,
  summarize,
  WORKER_IMAGE,
  writeResults,
  type Summary,
} from './support.js';

const LINES = positiveInt('BENCH_LOG_LINES', 200);
const ROUNDS = positiveInt('BENCH_LOG_RUNS', 3);
const ONLY = process.env.BENCH_LOG_ONLY;
/** Which log stores the throughput part runs on, in turn (`sqlite,postgres` by default). */
const STORES = (process.env.BENCH_LOG_STORES ?? 'sqlite,postgres').split(',');
/** A dir: the API and worker write a CPU profile there (`node --cpu-prof`) when the stack stops. */
const CPU_PROF = process.env.BENCH_LOG_CPU_PROF;
if (ONLY !== undefined && ONLY !== 'latency' && ONLY !== 'throughput')
  throw new Error('BENCH_LOG_ONLY must be latency or throughput');
const LATENCY_SCRIPT = `for i in $(seq 1 ${LINES}); do date +%s%N; sleep 0.05; done`;
const BIG_LINES = 500_000;
const THROUGHPUT_SCRIPT = `yes ${'0123456789'.repeat(10).slice(0, 99)} | head -n ${BIG_LINES}`;

let stack: RunningStack | undefined;
let postgres: PostgresServer | undefined;

interface SseResult {
  /** Receive time (ms since the epoch) and text of each line event. */
  lines: Array<{ at: number; line: string }>;
  count: number;
  ended: boolean;
}

/** Follows a job's SSE stream to its end; keeps the lines only when asked (the 50 MB run counts). */
async function follow(api: ApiClient, token: string, id: string, keep: boolean): Promise<SseResult> {
  const res = await fetch(`${api.baseUrl}/jobs/${id}/logs/stream`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200 || !res.body) throw new Error(`stream answered ${res.status}`);
  const result: SseResult = { lines: [], count: 0, ended: false };
  const parser = createParser({
    onEvent: (e) => {
      if (e.event === 'end') {
        result.ended = true;
        return;
      }
      result.count += 1;
      if (keep) result.lines.push({ at: Date.now(), line: (JSON.parse(e.data) as { line: string }).line });
    },
  });
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>)
    parser.feed(decoder.decode(chunk, { stream: true }));
  return result;
}

/** Runs `script` in a bare container like a job's; `onLine` sees each stdout line as it arrives. */
function bareRun(script: string, onLine?: (line: string, at: number) => void): Promise<number> {
  const started = now();
  return new Promise((resolve, reject) => {
    const child = spawn('docker', ['run', '--rm', '--init', '--network', 'none', WORKER_IMAGE, 'bash', '-c', script], {
      stdio: ['ignore', onLine ? 'pipe' : 'ignore', 'inherit'],
    });
    let pending = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const at = Date.now();
      pending += chunk;
      const parts = pending.split('\n');
      pending = parts.pop()!;
      for (const p of parts) onLine?.(p, at);
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(now() - started) : reject(new Error(`docker run exited ${code}`)),
    );
  });
}

const latencies = (lines: Array<{ at: number; line: string }>) =>
  lines.map((l) => l.at - Number(BigInt(l.line) / 1_000_000n));

type Latency = { lines: number; sse: Summary; bare: Summary };
type Throughput = {
  store: string;
  bytes: number;
  rounds: number;
  platformMs: number[];
  baselineMs: number[];
  platform: Summary;
  baseline: Summary;
  ratio: number;
  /** Peak RSS over the rounds, MiB. */
  peakRssMiB: { api: number; worker: number };
};

async function latency(api: ApiClient, token: string): Promise<Latency> {
  console.log(`latency: ${LINES} lines, one every 50 ms`);
  const job = await api.submit({ script: LATENCY_SCRIPT });
  const viaSse = await follow(api, token, job.id, true);
  if (!viaSse.ended || viaSse.count !== LINES)
    throw new Error(`SSE delivered ${viaSse.count} lines, ended ${viaSse.ended}`);
  const bare: Array<{ at: number; line: string }> = [];
  await bareRun(LATENCY_SCRIPT, (line, at) => bare.push({ at, line }));
  const sse = summarize(latencies(viaSse.lines));
  const bareLatency = summarize(latencies(bare));
  printTable('line latency (receive − print)', { 'hodei SSE': sse, 'bare docker run stdout': bareLatency });
  return { lines: LINES, sse, bare: bareLatency };
}

/** Resident memory of a process, bytes (0 once it is gone). */
async function rss(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

/** Samples the peak RSS of the stack's API and worker until `stop` is called. */
function peakRss(running: RunningStack): { stop(): Promise<{ api: number; worker: number }> } {
  const peak = { api: 0, worker: 0 };
  let sampling = true;
  const loop = (async () => {
    while (sampling) {
      peak.api = Math.max(peak.api, await rss(running.pid('api')));
      peak.worker = Math.max(peak.worker, await rss(running.pid('worker')));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    stop: async () => {
      sampling = false;
      await loop;
      return peak;
    },
  };
}

const MiB = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

async function throughput(api: ApiClient, token: string, running: RunningStack, store: string): Promise<Throughput> {
  console.log(`\nthroughput (${store} log store): ${BIG_LINES} lines of 100 bytes (50 MB), ${ROUNDS} rounds`);
  // Warm-up (the worker's first job, the image's layers), unless the latency part did it.
  if (ONLY === 'throughput' || store !== 'sqlite') {
    await follow(api, token, (await api.submit({ script: 'echo warm' })).id, false);
    await bareRun('echo warm');
  }
  const platformMs: number[] = [];
  const baselineMs: number[] = [];
  const peaks: Array<{ api: number; worker: number }> = [];
  for (let round = 0; round < ROUNDS; round++) {
    baselineMs.push(await bareRun(THROUGHPUT_SCRIPT));
    const sampler = peakRss(running);
    const started = now();
    const big = await api.submit({ script: THROUGHPUT_SCRIPT });
    const got = await follow(api, token, big.id, false);
    platformMs.push(now() - started);
    peaks.push(await sampler.stop());
    if (!got.ended || got.count !== BIG_LINES) throw new Error(`SSE delivered ${got.count} of ${BIG_LINES} lines`);
    const state = (await api.job(big.id)).state;
    if (state !== 'SUCCEEDED') throw new Error(`50 MB job ended ${state}`);
    console.log(
      `  round ${round + 1}: bare ${baselineMs[round]!.toFixed(0)} ms, hodei ${platformMs[round]!.toFixed(0)} ms ` +
        `(${(platformMs[round]! / baselineMs[round]!).toFixed(2)}×), peak RSS API ${MiB(peaks[round]!.api)} MiB, ` +
        `worker ${MiB(peaks[round]!.worker)} MiB`,
    );
  }
  const platform = summarize(platformMs);
  const baseline = summarize(baselineMs);
  printTable(`50 MB of output, ${store} log store`, {
    'hodei: submit → SSE end, all lines': platform,
    'bare docker run > /dev/null': baseline,
  });
  const ratio = platform.median / baseline.median;
  const peakRssMiB = {
    api: MiB(Math.max(...peaks.map((p) => p.api))),
    worker: MiB(Math.max(...peaks.map((p) => p.worker))),
  };
  console.log(
    `\n  ratio (median, ${store}): ${ratio.toFixed(2)}×; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  return { store, bytes: 50_000_000, rounds: ROUNDS, platformMs, baselineMs, platform, baseline, ratio, peakRssMiB };
}

/** The stack's settings: a log cap above what is printed, and a CPU profile per process if asked. */
function stackEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {
    HODEI_LOG_MAX_BYTES: String(256 * 1024 * 1024),
    HODEI_LOG_LEVEL: 'warn',
    ...extra,
  };
  // NODE_OPTIONS refuses --cpu-prof: a preload does what it does.
  if (CPU_PROF)
    Object.assign(env, {
      NODE_OPTIONS:
        `${process.env.NODE_OPTIONS ?? ''} --import=${path.join(import.meta.dirname, 'cpu-profile.mjs')}`.trim(),
      HODEI_CPU_PROFILE_DIR: CPU_PROF,
    });
  return env;
}

async function main() {
  const results: Record<string, unknown> = { environment: await environment() };
  const verdicts: string[] = [];
  if (STORES.includes('sqlite')) {
    stack = await startStack({ env: stackEnv() });
    const token = stack.info.apiToken;
    const api = new ApiClient(stack.info.apiUrl, token);
    const lat = ONLY === 'throughput' ? undefined : await latency(api, token);
    const thr = ONLY === 'latency' ? undefined : await throughput(api, token, stack, 'sqlite');
    await stack.stop();
    stack = undefined;
    if (lat)
      verdicts.push(
        goalLine(
          `median line latency ${lat.sse.median.toFixed(0)} ms < 100 ms (p95 ${lat.sse.p95.toFixed(0)} ms)`,
          lat.sse.median < 100,
        ),
      );
    if (thr)
      verdicts.push(goalLine(`50 MB within 1.5× of bare docker (SQLite): ${thr.ratio.toFixed(2)}×`, thr.ratio <= 1.5));
    Object.assign(results, { latency: lat, throughput: thr });
  }
  if (STORES.includes('postgres') && ONLY !== 'latency') {
    postgres = await startPostgres();
    stack = await startStack({ env: stackEnv({ HODEI_LOG_STORE: postgres.url }) });
    const api = new ApiClient(stack.info.apiUrl, stack.info.apiToken);
    const thr = await throughput(api, stack.info.apiToken, stack, 'postgres');
    verdicts.push(`  (reported) 50 MB through the PostgreSQL log store: ${thr.ratio.toFixed(2)}× bare docker`);
    results.throughputPostgres = thr;
  }
  console.log(`\n${verdicts.join('\n')}`);
  const file = writeResults('logs', { ...results, loadavgAfter: loadavg() });
  console.log(`\nresults: ${file}`);
}

runBench(main, async () => {
  await stack?.stop();
  await postgres?.stop();
});
