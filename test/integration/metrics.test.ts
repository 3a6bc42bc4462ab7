import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, cancel, clientFor, stack, submit, waitForEnd, waitForState } from '../support/api-client.js';
import { startStack, type RunningStack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?(?:[0-9.e+-]+|NaN|\+Inf|-Inf))(?: -?\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses Prometheus text format 0.0.4 strictly: every line is a comment or a sample. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(LABEL)) labels[k!] = v!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

const sum = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((total, s) => total + s.value, 0);

async function scrapeApi(): Promise<Sample[]> {
  const res = await api('/metrics');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

async function scrapeWorker(url = stack().workerMetricsUrl): Promise<Sample[]> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return parse(await res.text());
}

/** Count and sum a histogram gained between two scrapes. */
const delta = (before: Sample[], after: Sample[], name: string) => ({
  count: sum(after, `${name}_count`) - sum(before, `${name}_count`),
  sum: sum(after, `${name}_sum`) - sum(before, `${name}_sum`),
});

describe('/metrics', () => {
  it('parses as Prometheus text and its numbers move when jobs run', async () => {
    const [api0, worker0] = [await scrapeApi(), await scrapeWorker()];
    const ok = await submit({ script: 'echo metrics-ok' });
    const bad = await submit({ script: 'echo metrics-bad >&2; exit 2' });
    expect((await waitForEnd(ok.id)).state).toBe('SUCCEEDED');
    expect((await waitForEnd(bad.id)).state).toBe('FAILED');

    // Job counts come from Temporal's visibility store, which catches up within moments.
    const api1 = await waitFor('the job counts to move', async () => {
      const now = await scrapeApi();
      const moved =
        sum(now, 'hodei_jobs', { state: 'SUCCEEDED' }) >= sum(api0, 'hodei_jobs', { state: 'SUCCEEDED' }) + 1 &&
        sum(now, 'hodei_jobs', { state: 'FAILED' }) >= sum(api0, 'hodei_jobs', { state: 'FAILED' }) + 1;
      return moved ? now : undefined;
    });
    expect(sum(api1, 'hodei_http_requests_total', { method: 'POST', route: '/jobs' })).toBeGreaterThan(
      sum(api0, 'hodei_http_requests_total', { method: 'POST', route: '/jobs' }),
    );
    expect(sum(api1, 'hodei_http_requests_total', { route: '/jobs/:id' })).toBeGreaterThan(0);

    const worker1 = await scrapeWorker();
    for (const name of ['hodei_job_queue_wait_seconds_count', 'hodei_job_provisioning_seconds_count']) {
      expect(sum(worker1, name), name).toBeGreaterThanOrEqual(sum(worker0, name) + 2);
    }
    // Provisioning takes a real, bounded time (creating a container and putting the script in).
    const provisioned = delta(worker0, worker1, 'hodei_job_provisioning_seconds');
    expect(provisioned.sum).toBeGreaterThan(0);
    expect(provisioned.sum / provisioned.count).toBeLessThan(60);
    expect(sum(worker1, 'hodei_job_run_seconds_count', { outcome: 'exit_zero' })).toBeGreaterThanOrEqual(
      sum(worker0, 'hodei_job_run_seconds_count', { outcome: 'exit_zero' }) + 1,
    );
    expect(sum(worker1, 'hodei_job_run_seconds_count', { outcome: 'exit_nonzero' })).toBeGreaterThanOrEqual(
      sum(worker0, 'hodei_job_run_seconds_count', { outcome: 'exit_nonzero' }) + 1,
    );
    expect(sum(worker1, 'hodei_log_bytes_stored_total', { stream: 'stdout' })).toBeGreaterThanOrEqual(
      sum(worker0, 'hodei_log_bytes_stored_total', { stream: 'stdout' }) + 'metrics-ok\n'.length,
    );
    expect(sum(worker1, 'hodei_log_bytes_stored_total', { stream: 'stderr' })).toBeGreaterThanOrEqual(
      sum(worker0, 'hodei_log_bytes_stored_total', { stream: 'stderr' }) + 'metrics-bad\n'.length,
    );
  });

  it("counts job containers alive on the worker's host", async () => {
    const job = await submit({ script: 'sleep 300', cancelGraceSeconds: 0 });
    const running = await waitForState(job.id, ['RUNNING']);
    const samples = await scrapeWorker();
    // Created or running (the job reads RUNNING just before its container starts).
    expect(sum(samples, 'hodei_job_containers', { host: running.host! })).toBeGreaterThanOrEqual(1);
    expect((await cancel(job.id)).status).toBe(202);
    expect((await waitForEnd(job.id)).state).toBe('CANCELLED');
  });
});

describe('queue wait and provisioning, on a stack of its own (capacity 1)', () => {
  let small: RunningStack;
  beforeAll(async () => {
    small = await startStack({ capacity: 1 });
  });
  afterAll(async () => {
    await small?.stop();
  });
  const client = clientFor(() => small.info);

  it('counts the time a job waits for capacity as queue wait, and provisioning apart from it', async () => {
    const before = await scrapeWorker(small.info.workerMetricsUrl);
    const blocker = await client.submit({ script: 'sleep 4' });
    await client.waitForState(blocker.id, ['RUNNING']);
    // The host is full: this one waits until the blocker's container is gone.
    const waiting = await client.submit({ script: 'echo waited' });
    expect((await client.waitForEnd(blocker.id)).state).toBe('SUCCEEDED');
    expect((await client.waitForEnd(waiting.id)).state).toBe('SUCCEEDED');
    const after = await scrapeWorker(small.info.workerMetricsUrl);

    const queued = delta(before, after, 'hodei_job_queue_wait_seconds');
    const provisioned = delta(before, after, 'hodei_job_provisioning_seconds');
    expect(queued.count).toBe(2);
    expect(provisioned.count).toBe(2);
    // The second job waited out most of the blocker's 4 s (it was queued once the blocker ran).
    expect(queued.sum).toBeGreaterThan(2);
    // Waiting is not provisioning: each container was created in a real, bounded time.
    expect(provisioned.sum).toBeGreaterThan(0);
    expect(provisioned.sum / provisioned.count).toBeLessThan(60);
  });
});
