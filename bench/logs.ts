/**
 * Log streaming benchmark (issue 3). On its own stack (log cap 256 MiB, above what is printed):
 *   latency:    a job printing its clock (`date +%s%N`) every 50 ms, BENCH_LOG_LINES lines (default
 *               200); an SSE client of GET /jobs/:id/logs/stream, connected before the job starts,
 *               takes receive time minus print time per line (same machine clock). Baseline in the
 *               same run: the same script under a bare `docker run` whose stdout the bench reads.
 *   throughput: 50 MB in 100-byte lines (`yes … | head -n 500000`): submit → the SSE client has
 *               every line and the end event, against a bare `docker run` of the same script with
 *               its output to /dev/null; BENCH_LOG_RUNS rounds (default 3), alternating.
 * BENCH_LOG_ONLY=latency or =throughput runs one part only.
 * Prints medians, p95 and ratios; writes JSON to bench/results/. Never fails on a timing.
 */
import { spawn } from 'node:child_process';
import { createParser } from 'eventsource-parser';
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
if (ONLY !== undefined && ONLY !== 'latency' && ONLY !== 'throughput')
  throw new Error('BENCH_LOG_ONLY must be latency or throughput');
const LATENCY_SCRIPT = `for i in $(seq 1 ${LINES}); do date +%s%N; sleep 0.05; done`;
const BIG_LINES = 500_000;
const THROUGHPUT_SCRIPT = `yes ${'0123456789'.repeat(10).slice(0, 99)} | head -n ${BIG_LINES}`;

let stack: RunningStack | undefined;

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
  bytes: number;
  rounds: number;
  platformMs: number[];
  baselineMs: number[];
  platform: Summary;
  baseline: Summary;
  ratio: number;
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

async function throughput(api: ApiClient, token: string): Promise<Throughput> {
  console.log(`\nthroughput: ${BIG_LINES} lines of 100 bytes (50 MB), ${ROUNDS} rounds`);
  // Warm-up (the worker's first job, the image's layers), unless the latency part did it.
  if (ONLY === 'throughput') {
    await follow(api, token, (await api.submit({ script: 'echo warm' })).id, false);
    await bareRun('echo warm');
  }
  const platformMs: number[] = [];
  const baselineMs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    baselineMs.push(await bareRun(THROUGHPUT_SCRIPT));
    const started = now();
    const big = await api.submit({ script: THROUGHPUT_SCRIPT });
    const got = await follow(api, token, big.id, false);
    platformMs.push(now() - started);
    if (!got.ended || got.count !== BIG_LINES) throw new Error(`SSE delivered ${got.count} of ${BIG_LINES} lines`);
    const state = (await api.job(big.id)).state;
    if (state !== 'SUCCEEDED') throw new Error(`50 MB job ended ${state}`);
    console.log(
      `  round ${round + 1}: bare ${baselineMs[round]!.toFixed(0)} ms, hodei ${platformMs[round]!.toFixed(0)} ms (${(platformMs[round]! / baselineMs[round]!).toFixed(2)}×)`,
    );
  }
  const platform = summarize(platformMs);
  const baseline = summarize(baselineMs);
  printTable('50 MB of output', {
    'hodei: submit → SSE end, all lines': platform,
    'bare docker run > /dev/null': baseline,
  });
  const ratio = platform.median / baseline.median;
  console.log(`\n  ratio (median): ${ratio.toFixed(2)}×`);
  return { bytes: 50_000_000, rounds: ROUNDS, platformMs, baselineMs, platform, baseline, ratio };
}

async function main() {
  stack = await startStack({ env: { HODEI_LOG_MAX_BYTES: String(256 * 1024 * 1024), HODEI_LOG_LEVEL: 'warn' } });
  const token = stack.info.apiToken;
  const api = new ApiClient(stack.info.apiUrl, token);
  const lat = ONLY === 'throughput' ? undefined : await latency(api, token);
  const thr = ONLY === 'latency' ? undefined : await throughput(api, token);
  if (lat)
    console.log(
      goalLine(
        `median line latency ${lat.sse.median.toFixed(0)} ms < 100 ms (p95 ${lat.sse.p95.toFixed(0)} ms)`,
        lat.sse.median < 100,
      ),
    );
  if (thr) console.log(goalLine(`50 MB within 1.5× of bare docker: ${thr.ratio.toFixed(2)}×`, thr.ratio <= 1.5));
  const file = writeResults('logs', { environment: await environment(), latency: lat, throughput: thr });
  console.log(`\nresults: ${file}`);
}

runBench(main, async () => {
  await stack?.stop();
});
