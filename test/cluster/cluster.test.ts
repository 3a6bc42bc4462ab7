import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { describe, expect, inject, it } from 'vitest';
import { TERMINAL_STATES } from '../../domain/job-state.js';
import type { ClusterInfo } from '../../scripts/cluster/cluster.js';
import { dockerHostId } from '../../worker/host.js';
import {
  clientFor,
  eventJob,
  isJobContainerCreated,
  isJobContainerStarted,
  jobContainers,
  watchContainerEvents,
  type ApiTarget,
  type Job,
} from '../support/api-client.js';
import { lineReport, numberedScript, stdoutLines } from '../support/faults.js';
import { openSse } from '../support/sse.js';
import { waitFor } from '../support/wait.js';

/**
 * Faults of the many-machine topology (`npm run cluster`, docs/cluster.md), on the one cluster
 * this project's global set-up starts: two hosts of capacity 4 (network namespaces with an engine
 * and a worker each), the four Temporal services and PostgreSQL as processes of their own, two
 * API replicas. A part killed here is started again by the cluster's supervisor.
 */
const run = promisify(execFile);
const cluster = inject('cluster');
/** The cluster's state now (PIDs change as parts are restarted). */
const state = (): ClusterInfo =>
  JSON.parse(readFileSync(path.join(cluster.runDir, 'state.json'), 'utf8')) as ClusterInfo;
const replica = (i: number): ApiTarget => ({ apiUrl: cluster.apiUrls[i]!, apiToken: cluster.apiToken });
const one = clientFor(() => replica(0));
const two = clientFor(() => replica(1));
const engines = cluster.hosts.map((h) => new Docker({ socketPath: h.dockerHost.slice('unix://'.length) }));
const hostIds = await Promise.all(engines.map((e) => dockerHostId(e)));
const hostOf = (job: Job) => hostIds.indexOf(job.host ?? '');

/** Kills one part by its current PID and waits until the supervisor started it again. */
async function killPart(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const pid = state().pids[name];
  expect(pid, `${name} runs`).toBeTypeOf('number');
  process.kill(pid!, signal);
  await waitFor(
    `${name} to be started again`,
    () => {
      const now = state().pids[name];
      return now !== undefined && now !== pid ? now : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  const api = /^api-(\d+)$/.exec(name);
  // A replica started again keeps its port: wait until it answers there.
  if (api) {
    const url = `${cluster.apiUrls[Number(api[1]) - 1]}/readyz`;
    await waitFor(`${name} to be ready`, async () => ((await fetch(url)).ok ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
  }
}

/** Waits until every job ended, asking for one at a time (40 pollers at once would load the machine). */
async function waitForAll(ids: string[], timeoutMs = 170_000): Promise<Job[]> {
  const ended = new Map<string, Job>();
  await waitFor(
    `${ids.length} jobs to end`,
    async () => {
      for (const id of ids) {
        if (ended.has(id)) continue;
        const job = await two.getJob(id);
        if (!TERMINAL_STATES.includes(job.state)) return undefined;
        ended.set(id, job);
      }
      return true;
    },
    { timeoutMs, intervalMs: 250 },
  );
  return ids.map((id) => ended.get(id)!);
}

/**
 * Counts each engine's live job containers from its events: the most at once, and every event. A
 * container holds a slot from its creation, or a warm pool container from its claim, until its
 * script ends (an idle pool container, or an exited one waiting to be removed, holds none).
 */
function watchEngines() {
  const watches = engines.map((engine) => watchContainerEvents(engine, cluster.instanceId));
  const eventsOf = () =>
    watches.flatMap((w, host) =>
      w.events.map((e) => ({ host, e, action: e.Action, job: eventJob(e) ?? '', at: e.time })),
    );
  return {
    ready: Promise.all(watches.map((w) => w.ready)),
    get events() {
      return eventsOf();
    },
    stop: () => {
      return watches.map((w) => {
        const live = new Set<string>();
        let most = 0;
        for (const e of w.stop()) {
          if (isJobContainerCreated(e)) live.add(e.id);
          if (e.Action === 'die' || e.Action === 'destroy') live.delete(e.id);
          most = Math.max(most, live.size);
        }
        return most;
      });
    },
  };
}

async function runningWithLines(client: typeof one, id: string, lines: number): Promise<Job> {
  return waitFor(
    `job ${id} to run and print ${lines} lines`,
    async () => {
      const job = await client.getJob(id);
      return job.state === 'RUNNING' && (await stdoutLines(replica(0), id)).length >= lines ? job : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 100 },
  );
}

describe('capacity across hosts', () => {
  it('40 jobs on two hosts of capacity 4: never more than 4 containers on either, both used', async () => {
    const watch = watchEngines();
    await watch.ready;
    const jobs = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? two : one).submit({ script: `echo ${i}; sleep 1` })),
    );
    const done = await waitForAll(jobs.map((j) => j.id));
    const max = watch.stop();
    expect(done.map((j) => j.state)).toEqual(Array(40).fill('SUCCEEDED'));
    expect(max[0]).toBeLessThanOrEqual(4);
    expect(max[1]).toBeLessThanOrEqual(4);
    const perHost = hostIds.map((id) => done.filter((j) => j.host === id).length);
    expect(perHost[0]).toBeGreaterThan(0);
    expect(perHost[1]).toBeGreaterThan(0);
    console.info(`capacity: most containers at once ${max.join(' / ')}, jobs per host ${perHost.join(' / ')}`);
  });
});

describe('the Temporal Web UI against the cluster', () => {
  it('lists the namespace from the frontend and serves its page', async () => {
    const res = await fetch(`${cluster.temporalUiUrl}/api/v1/namespaces`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { namespaces: { namespaceInfo: { name: string } }[] };
    expect(body.namespaces.map((n) => n.namespaceInfo.name)).toContain(cluster.namespace);
    const page = await fetch(`${cluster.temporalUiUrl}/namespaces/${cluster.namespace}/workflows`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toMatch(/<script|_app\//);
  });
});

describe('artifacts in the S3 store (versitygw)', () => {
  it('a file a job wrote on one host downloads, same sha256, through both API replicas', async () => {
    const script = 'mkdir -p out && head -c 300000 /dev/urandom > out/random.bin && sha256sum out/random.bin';
    const submitted = await one.submit({ script, artifacts: { paths: ['out/**'] } });
    const done = await two.waitForEnd(submitted.id, 120_000);
    expect(done.state).toBe('SUCCEEDED');
    expect(hostOf(done)).toBeGreaterThanOrEqual(0);
    const printed = (await stdoutLines(replica(0), done.id)).join('\n').split(/\s+/)[0];
    expect(printed).toMatch(/^[0-9a-f]{64}$/);
    const sha = (data: ArrayBuffer) => createHash('sha256').update(Buffer.from(data)).digest('hex');
    for (const i of [0, 1]) {
      const headers = { authorization: `Bearer ${cluster.apiToken}` };
      const base = `${cluster.apiUrls[i]}/jobs/${done.id}/artifacts`;
      const list = (await (await fetch(base, { headers })).json()) as { artifacts: { path: string; sha256: string }[] };
      expect(list.artifacts).toEqual([expect.objectContaining({ path: 'out/random.bin', sha256: printed })]);
      const res = await fetch(`${base}/out/random.bin`, { headers });
      expect(res.status).toBe(200);
      const body = await res.arrayBuffer();
      expect(body.byteLength).toBe(300_000);
      expect(sha(body)).toBe(printed);
    }
    console.info(`artifacts: written on host ${cluster.hosts[hostOf(done)]!.name}, sha256 equal through both replicas`);
  });
});

describe('a host cut off by its link', () => {
  it('its running job runs again on the other host; the link back, the reaper removes the stale container', async () => {
    const watch = watchEngines();
    await watch.ready;
    const LINES = 40;
    const job = await one.submit({ script: numberedScript(LINES, 0.25) });
    const running = await runningWithLines(one, job.id, 3);
    const lost = hostOf(running);
    expect(lost).toBeGreaterThanOrEqual(0);
    const host = cluster.hosts[lost]!;
    await run('ip', ['link', 'set', host.veth, 'down']);
    let done: Job;
    try {
      done = await two.waitForEnd(job.id, 150_000);
    } finally {
      await run('ip', ['link', 'set', host.veth, 'up']);
    }
    expect(done).toMatchObject({ state: 'SUCCEEDED', attempt: 2 });
    expect(hostOf(done)).toBe(1 - lost);
    // The second attempt printed every line once after its marker.
    const lines = await stdoutLines(replica(1), job.id);
    const marker = (await two.logs(job.id)).split('\n').indexOf('[hodei] attempt 2 started');
    expect(marker).toBeGreaterThan(0);
    const report = lineReport(lines.slice(lines.length - LINES), LINES);
    expect(report).toMatchObject({ lost: 0, duplicated: 0, inOrder: true });
    // The cut-off host's container goes once its worker reaches Temporal again.
    await waitFor(
      'the stale container to be removed',
      async () => ((await jobContainers(cluster.instanceId, job.id, engines[lost])).length === 0 ? true : undefined),
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    watch.stop();
    const ofJob = watch.events.filter((e) => e.job === job.id);
    const staleDied = ofJob.find((e) => e.host === lost && e.action === 'die');
    // Its start, or its claim of a warm pool container (started ahead, under the pool's name).
    const secondStarted = ofJob.find((e) => e.host === 1 - lost && isJobContainerStarted(e.e));
    console.info(
      `host cut: attempt 2 on the other host; the stale container died ${
        staleDied && secondStarted ? `${secondStarted.at - staleDied.at} s before` : '?'
      } the second started; lines lost ${report.lost}, duplicated ${report.duplicated}`,
    );
    // Never ran twice at once: the stale container had stopped before the second attempt started.
    expect(staleDied).toBeDefined();
    expect(secondStarted).toBeDefined();
    expect(staleDied!.at).toBeLessThanOrEqual(secondStarted!.at);
  });
});

describe('an API replica killed (-9) mid-stream', () => {
  it('the client resumes on the other replica: no gap, no duplicate', async () => {
    const LINES = 40;
    const job = await one.submit({ script: numberedScript(LINES, 0.1) });
    const url = (i: number) => `${cluster.apiUrls[i]}/jobs/${job.id}/logs/stream`;
    const first = await openSse(url(0), { token: cluster.apiToken });
    // Its stream breaks when the replica dies: that is the point, not an error.
    const firstClosed = first.closed.catch(() => undefined);
    await first.waitForLines(5, 60_000);
    await killPart('api-1');
    await firstClosed;
    const lastId = first.events.filter((e) => !e.event).at(-1)!.id;
    const second = await openSse(url(1), { token: cluster.apiToken, lastEventId: lastId });
    await second.closed;
    const lines = [...first.lines(), ...second.lines()].filter((l) => l.stream === 'stdout').map((l) => l.line);
    const report = lineReport(lines, LINES);
    console.info(`API replica killed: ${first.lines().length} lines from one, ${second.lines().length} from the other`);
    expect(report).toEqual({ lost: 0, duplicated: 0, inOrder: true, foreign: 0 });
    expect(second.end()).toMatchObject({ state: 'SUCCEEDED' });
  });
});

describe('a server process restarted mid-job', () => {
  // `worker`: the worker of the first job's host (its jobs reattach to their containers).
  it.each(['temporal-history', 'temporal-matching', 'temporal-frontend', 'postgres', 'worker'])(
    '%s: the jobs complete, every line stored once',
    async (part) => {
      const LINES = 30;
      const jobs = await Promise.all([1, 2].map(() => one.submit({ script: numberedScript(LINES, 0.2) })));
      const running = await Promise.all(jobs.map((j) => runningWithLines(one, j.id, 3)));
      const name = part === 'worker' ? `worker-${cluster.hosts[hostOf(running[0]!)]!.name}` : part;
      // PostgreSQL gets its fast shutdown (SIGINT: a restart); the others are killed outright.
      await killPart(name, part === 'postgres' ? 'SIGINT' : 'SIGKILL');
      const done = await waitForAll(jobs.map((j) => j.id));
      // A killed worker's jobs reattach to their containers (attempt 1); on a machine so loaded
      // that its restart outlasts HODEI_HOST_LOSS_SECONDS they run again (attempt 2): then the
      // second attempt's lines, after its marker, are each stored once.
      const reports = await Promise.all(
        done.map(async (j) => {
          const lines = await stdoutLines(replica(1), j.id);
          if (j.attempt === 1) return lineReport(lines, LINES);
          expect((await two.logs(j.id)).split('\n')).toContain(`[hodei] attempt ${j.attempt} started`);
          return lineReport(lines.slice(lines.length - LINES), LINES);
        }),
      );
      console.info(
        `${name} restarted: ${done.map((j) => `${j.state} attempt ${j.attempt}`).join(', ')}; ` +
          reports.map((r) => `lost ${r.lost} duplicated ${r.duplicated}`).join(', '),
      );
      expect(done.map((j) => j.state)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
      for (const r of reports) expect(r).toEqual({ lost: 0, duplicated: 0, inOrder: true, foreign: 0 });
    },
  );
});

// Any fault above must leave the cluster whole: every part running again.
describe('after the faults', () => {
  it('every part runs', async () => {
    await sleep(100);
    const pids = state().pids;
    for (const [name, pid] of Object.entries(pids)) expect(pid, name).toBeTypeOf('number');
    expect(Object.keys(pids).sort()).toEqual(
      [
        'api-1',
        'api-2',
        'docker-a',
        'docker-b',
        'postgres',
        's3',
        'temporal-frontend',
        'temporal-history',
        'temporal-matching',
        'temporal-ui',
        'temporal-worker',
        'worker-a',
        'worker-b',
      ].sort(),
    );
  });
});
