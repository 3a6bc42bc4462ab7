/**
 * Log streaming benchmark (issue 3). On its own stack (log cap 256 MiB, above what is printed):
 *   latency:    a job printing its clock (`date +%s%N`) every 50 ms, BENCH_LOG_LINES lines (default
 *               200); an SSE client of GET /jobs/:id/logs/stream, connected before the job starts,
 *               takes receive time minus print time per line (same machine clock). Baseline in the
 *               same run: the same script under a bare `docker run` whose stdout the bench reads.
 *   throughput: 50 MB in 100-byte lines (`yes … | head -n 500000`): submit → the SSE client has
 *               every line and the end event, against a bare `docker run` of the same script with
 *               its output to /dev/null; BENCH_LOG_RUNS rounds (default 3), alternating.
 * Prints medians, p95 and ratios; writes JSON to bench/results/. Never fails on a timing.
 */
import { spawn } from 'node:child_process';
import { createParser } from 'eventsource-parser';
import { startStack, type RunningStack } from '../test/support/stack.js';
import { ApiClient, environment, goalLine, now, positiveInt, printTable, runBench, summarize, WORKER_IMAGE, writeResults } from './support.js';

const LINES = positiveInt('BENCH_LOG_LINES', 200);
const ROUNDS = positiveInt('BENCH_LOG_RUNS', 3);
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
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
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
    child.once('exit', (code) => (code === 0 ? resolve(now() - started) : reject(new Error(`docker run exited ${code}`))));
  });
}

const latencies = (lines: Array<{ at: number; line: string }>) => lines.map((l) => l.at - Number(BigInt(l.line) / 1_000_000n));

async function main() {
  stack = await startStack({ env: { HODEI_LOG_MAX_BYTES: String(256 * 1024 * 1024), HODEI_LOG_LEVEL: 'warn' } });
  const token = stack.info.apiToken;
  const api = new ApiClient(stack.info.apiUrl, token);

  console.log(`latency: ${LINES} lines, one every 50 ms`);
  const job = await api.submit({ script: LATENCY_SCRIPT });
  const viaSse = await follow(api, token, job.id, true);
  if (!viaSse.ended || viaSse.count !== LINES) throw new Error(`SSE delivered ${viaSse.count} lines, ended ${viaSse.ended}`);
  const bare: Array<{ at: number; line: string }> = [];
  await bareRun(LATENCY_SCRIPT, (line, at) => bare.push({ at, line }));
  const sseLatency = summarize(latencies(viaSse.lines));
  const bareLatency = summarize(latencies(bare));
  printTable('line latency (receive − print)', { 'hodei SSE': sseLatency, 'bare docker run stdout': bareLatency });

  console.log(`\nthroughput: ${BIG_LINES} lines of 100 bytes (50 MB), ${ROUNDS} rounds`);
  const platform: number[] = [];
  const baseline: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    baseline.push(await bareRun(THROUGHPUT_SCRIPT));
    const started = now();
    const big = await api.submit({ script: THROUGHPUT_SCRIPT });
    const got = await follow(api, token, big.id, false);
    platform.push(now() - started);
    if (!got.ended || got.count !== BIG_LINES) throw new Error(`SSE delivered ${got.count} of ${BIG_LINES} lines`);
    const state = (await api.job(big.id)).state;
    if (state !== 'SUCCEEDED') throw new Error(`50 MB job ended ${state}`);
  }
  const platformSummary = summarize(platform);
  const baselineSummary = summarize(baseline);
  printTable('50 MB of output', { 'hodei: submit → SSE end, all lines': platformSummary, 'bare docker run > /dev/null': baselineSummary });
  const ratio = platformSummary.median / baselineSummary.median;
  console.log(`\n  ratio (median): ${ratio.toFixed(2)}×`);
  console.log(goalLine(`median line latency ${sseLatency.median.toFixed(0)} ms < 100 ms (p95 ${sseLatency.p95.toFixed(0)} ms)`, sseLatency.median < 100));
  console.log(goalLine(`50 MB within 1.5× of bare docker: ${ratio.toFixed(2)}×`, ratio <= 1.5));
  const file = writeResults('logs', {
    environment: await environment(),
    latency: { lines: LINES, sse: sseLatency, bare: bareLatency },
    throughput: { bytes: 50_000_000, rounds: ROUNDS, platformMs: platform, baselineMs: baseline, platform: platformSummary, baseline: baselineSummary, ratio },
  });
  console.log(`\nresults: ${file}`);
}

runBench(main, async () => {
  await stack?.stop();
});
