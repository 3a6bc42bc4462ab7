import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listQuery } from '../../api/jobs-list.js';
import { api, cancel, stack, submit, waitForEnd, waitForState, type Job } from '../support/api-client.js';
import { TEMPORAL_BIN } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

interface Page {
  jobs: Job[];
  nextCursor?: string;
}

async function list(query: string): Promise<Page> {
  const res = await api(`/jobs?${query}`);
  if (res.status !== 200) throw new Error(`GET /jobs?${query} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as Page;
}

/** Every page of a filter, following the cursor. */
async function listAll(query: string, limit: number): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await list(`${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    expect(page.jobs.length).toBeLessThanOrEqual(limit);
    ids.push(...page.jobs.map((j) => j.id));
    cursor = page.nextCursor;
    pages += 1;
  } while (cursor);
  return { ids, pages };
}

// One label value per run, so this file sees only its own jobs in the shared stack.
const run = `list-${randomUUID().slice(0, 8)}`;
const ok: string[] = [];
const failed: string[] = [];
let sleeper: Job;

beforeAll(async () => {
  // Submitted one after another, so creation order is known.
  for (let i = 0; i < 5; i += 1) ok.push((await submit({ script: `echo ok ${i}`, labels: { run, kind: 'ok' } })).id);
  for (let i = 0; i < 2; i += 1)
    failed.push((await submit({ script: 'exit 3', labels: { run, kind: "it's bad" } })).id);
  await Promise.all([...ok, ...failed].map((id) => waitForEnd(id)));
  sleeper = await submit({ script: 'sleep 300', labels: { run, kind: 'sleeper' }, cancelGraceSeconds: 0 });
  await waitForState(sleeper.id, ['RUNNING']);
});

afterAll(async () => {
  if (sleeper) await cancel(sleeper.id);
});

describe('GET /jobs (Temporal visibility)', () => {
  it('pages through every job of a label with a cursor, newest first', async () => {
    const all = [...ok, ...failed, sleeper.id];
    const { ids, pages } = await waitFor('all 8 jobs to be listed', async () => {
      const result = await listAll(`label=run:${run}`, 3);
      return result.ids.length === all.length ? result : undefined;
    });
    expect(pages).toBe(3);
    expect(new Set(ids)).toEqual(new Set(all));
    // Newest first, in Temporal's visibility order: the open job, then ended ones by end time.
    const page = await list(`label=run:${run}&limit=100`);
    expect(page.jobs[0]!.id).toBe(sleeper.id);
    expect(page.jobs.slice(1).every((j) => j.finishedAt)).toBe(true);
    expect(page.nextCursor).toBeUndefined();
    // A cursor pages only the filter it came from.
    const first = await list(`label=run:${run}&limit=1`);
    const res = await api(`/jobs?label=run:${run}&state=FAILED&cursor=${first.nextCursor}`);
    expect(res.status).toBe(400);
  });

  it('filters by state and by several labels', async () => {
    await waitFor('the state filters to agree', async () => {
      const succeeded = await listAll(`label=run:${run}&state=SUCCEEDED`, 2);
      const failedJobs = await listAll(`label=run:${run}&state=FAILED`, 10);
      const running = await listAll(`label=run:${run}&state=RUNNING`, 10);
      if (succeeded.ids.length !== ok.length || failedJobs.ids.length !== failed.length || running.ids.length !== 1)
        return undefined;
      expect(new Set(succeeded.ids)).toEqual(new Set(ok));
      expect(new Set(failedJobs.ids)).toEqual(new Set(failed));
      expect(running.ids).toEqual([sleeper.id]);
      return true;
    });
    const both = await list(`label=run:${run}&label=${encodeURIComponent("kind:it's bad")}`);
    expect(new Set(both.jobs.map((j) => j.id))).toEqual(new Set(failed));
    expect(both.jobs.every((j) => j.state === 'FAILED' && j.labels.kind === "it's bad")).toBe(true);
    expect((await list(`label=run:${run}&state=CANCELLED`)).jobs).toEqual([]);
  });

  it('finds the same jobs with `temporal workflow list --query`', async () => {
    const query = listQuery({ state: 'SUCCEEDED', label: [`run:${run}`] });
    const { stdout } = await promisify(execFile)(TEMPORAL_BIN, [
      'workflow',
      'list',
      '--address',
      stack().temporalAddress,
      '--namespace',
      stack().namespace,
      '--query',
      query,
      '--output',
      'json',
    ]);
    const rows = JSON.parse(stdout) as Array<{ execution: { workflowId: string } }>;
    expect(new Set(rows.map((r) => r.execution.workflowId))).toEqual(new Set(ok));
    // The short form the README shows.
    const short = await promisify(execFile)(TEMPORAL_BIN, [
      'workflow',
      'list',
      '--address',
      stack().temporalAddress,
      '--query',
      `HodeiLabels='run:${run}' AND HodeiState='RUNNING'`,
      '--output',
      'json',
    ]);
    expect(
      (JSON.parse(short.stdout) as Array<{ execution: { workflowId: string } }>).map((r) => r.execution.workflowId),
    ).toEqual([sleeper.id]);
  });

  it('refuses bad filters and cursors with 400', async () => {
    for (const query of [
      'state=NOPE',
      'state=PROVISIONING',
      'limit=0',
      'limit=101',
      'label=nocolon',
      'cursor=not*a*cursor',
      'cursor=AAAA',
      `cursor=${Buffer.from('{"q":"x","t":"AAAA"}').toString('base64url')}`,
    ]) {
      const res = await api(`/jobs?${query}`);
      expect(res.status, query).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_request');
    }
  });
});
