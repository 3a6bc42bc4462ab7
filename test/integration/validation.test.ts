import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MAX_SUBMIT_BYTES } from '../../domain/job-spec.js';
import { stack } from '../support/api-client.js';
import { inProcessApi, type InProcessApi } from '../support/in-process-api.js';

// The API in-process against the real Temporal server, so we can see that nothing was started.
let inProcess: InProcessApi;
let client: Client;
let request: InProcessApi['request'];

beforeAll(async () => {
  inProcess = await inProcessApi(stack());
  ({ client, request } = inProcess);
});

afterAll(async () => {
  await inProcess?.close();
});

const post = (body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  request('/jobs', { method: 'POST', headers, body });

describe('bad requests are refused with a clear error and start nothing', () => {
  const cases: Array<[string, string, string]> = [
    ['not JSON', '{"script": ', '(body)'],
    ['no script', '{}', 'script'],
    ['empty script', '{"script": ""}', 'script'],
    ['script not a string', '{"script": 42}', 'script'],
    ['env value not a string', '{"script": "true", "env": {"A": 1}}', 'env.A'],
    ['bad env name', '{"script": "true", "env": {"1BAD": "x"}}', 'env.1BAD'],
    ['timeout not a number', '{"script": "true", "timeoutSeconds": "10"}', 'timeoutSeconds'],
    ['negative timeout', '{"script": "true", "timeoutSeconds": -1}', 'timeoutSeconds'],
    ['unknown field', '{"script": "true", "timeout": 10}', '(body)'],
    ['bad image reference', '{"script": "true", "image": "Not An Image!"}', 'image'],
    ['an array body', '[1, 2]', '(body)'],
  ];

  it.each(cases)('%s → 400 naming the field', async (_what, body, field) => {
    const start = vi.spyOn(client.workflow, 'start');
    const res = await post(body);
    expect(res.status).toBe(400);
    const json = (await res.json()) as { error: { code: string; message: string; issues?: Array<{ path: string }> } };
    expect(json.error.code).toBe('invalid_request');
    if (field !== '(body)') expect(json.error.issues?.map((i) => i.path)).toContain(field);
    expect(json.error.message.length).toBeGreaterThan(0);
    expect(start).not.toHaveBeenCalled();
    start.mockRestore();
  });

  it('a body over the limit → 413', async () => {
    const start = vi.spyOn(client.workflow, 'start');
    const res = await post(JSON.stringify({ script: `echo ${'x'.repeat(MAX_SUBMIT_BYTES)}` }));
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: 'payload_too_large' } });
    expect(start).not.toHaveBeenCalled();
    start.mockRestore();
  });

  it('a body without a JSON content type → 415', async () => {
    const start = vi.spyOn(client.workflow, 'start');
    const res = await post('{"script":"true"}', { 'content-type': 'text/plain' });
    expect(res.status).toBe(415);
    expect(await res.json()).toMatchObject({ error: { code: 'unsupported_media_type' } });
    expect(start).not.toHaveBeenCalled();
    start.mockRestore();
  });

  it('unknown job → 404 on every job route', async () => {
    for (const [method, path] of [
      ['GET', '/jobs/nope'],
      ['GET', '/jobs/nope/logs'],
      ['POST', '/jobs/nope/cancel'],
    ] as const) {
      const res = await request(path, { method });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(await res.json()).toMatchObject({ error: { code: 'not_found' } });
    }
  });

  it('a valid job is accepted, readable at once, and its spec defaults are applied', async () => {
    const res = await post(JSON.stringify({ script: 'echo ok', labels: { team: 'a' } }));
    expect(res.status).toBe(201);
    const job = (await res.json()) as { id: string; name: string; state: string; labels: Record<string, string> };
    expect(job).toMatchObject({ name: 'echo ok', state: 'QUEUED', labels: { team: 'a' } });
    const got = await request(`/jobs/${job.id}`);
    expect(got.status).toBe(200);
  });
});

describe('health', () => {
  it('healthz and readyz answer 200 while Temporal and a worker are up', async () => {
    expect((await inProcess.app.request('/healthz')).status).toBe(200);
    expect((await inProcess.app.request('/readyz')).status).toBe(200);
  });
});
