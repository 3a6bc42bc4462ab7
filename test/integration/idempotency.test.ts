import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { api, containerEvents, isJobContainerCreated, waitForEnd, type Job } from '../support/api-client.js';

const post = (spec: Record<string, unknown>, key?: string) =>
  api('/jobs', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify(spec),
  });

/** Containers that became the job's (created for it or claimed from the pool) between `since` (ms) and now. */
const containersCreated = async (jobId: string, since: number) =>
  (await containerEvents(jobId, Math.floor(since / 1000) - 1)).filter(isJobContainerCreated).length;

describe('POST /jobs with an Idempotency-Key', () => {
  it('two concurrent submits with one key → one job, one container; again after it ended → the same job', async () => {
    const since = Date.now();
    const key = `key-${randomUUID()}`;
    const spec = { script: 'sleep 1; echo once', env: { B: '2', A: '1' } };
    const [a, b] = await Promise.all([post(spec, key), post({ ...spec, env: { A: '1', B: '2' } }, key)]);
    expect([a.status, b.status].sort()).toEqual([200, 201]);
    const [jobA, jobB] = [(await a.json()) as Job, (await b.json()) as Job];
    expect(jobA.id).toBe(jobB.id);
    const replayed = a.status === 200 ? a : b;
    expect(replayed.headers.get('idempotent-replayed')).toBe('true');
    expect(replayed.headers.get('location')).toBe(`/jobs/${jobA.id}`);

    const done = await waitForEnd(jobA.id);
    expect(done.state).toBe('SUCCEEDED');
    const again = await post(spec, key);
    expect(again.status).toBe(200);
    expect((await again.json()) as Job).toMatchObject({ id: jobA.id, state: 'SUCCEEDED' });
    expect(await containersCreated(jobA.id, since)).toBe(1);
  });

  it('the same key with another spec → 409, nothing started', async () => {
    const key = `key-${randomUUID()}`;
    const first = await post({ script: 'true' }, key);
    expect(first.status).toBe(201);
    const other = await post({ script: 'echo something else' }, key);
    expect(other.status).toBe(409);
    expect(await other.json()).toMatchObject({ error: { code: 'idempotency_key_reused' } });
    await waitForEnd(((await first.json()) as Job).id);
  });

  it('different keys, or none, → different jobs', async () => {
    const ids = await Promise.all(
      [`key-${randomUUID()}`, `key-${randomUUID()}`, undefined, undefined].map(async (key) => {
        const res = await post({ script: 'true' }, key);
        expect(res.status).toBe(201);
        return ((await res.json()) as Job).id;
      }),
    );
    expect(new Set(ids).size).toBe(4);
    await Promise.all(ids.map((id) => waitForEnd(id)));
  });

  it('refuses a malformed key with 400', async () => {
    const res = await post({ script: 'true' }, 'x'.repeat(256));
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'invalid_request' } });
  });
});
