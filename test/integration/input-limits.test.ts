import { connect } from 'node:net';
import type { Client } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { labelsAttributeBytes, MAX_LABELS_ATTRIBUTE_BYTES } from '../../domain/job-spec.js';
import { labelsAttribute, LABELS_KEY } from '../../domain/job-state.js';
import { api, stack, submit, waitForEnd } from '../support/api-client.js';
import { inProcessApi, type InProcessApi } from '../support/in-process-api.js';
import { waitFor } from '../support/wait.js';

// Input the API used to accept and then fail on (or read differently), each refused up front
// with a 400 naming the field. Routes run in-process against the real Temporal server (so a spy
// sees that Temporal was never asked); what only the real server process does (its HTTP parser,
// Temporal's own limits) goes to the shared stack's API.
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

afterEach(() => {
  vi.restoreAllMocks();
});

const postJob = (body: string | Uint8Array) =>
  request('/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body });

interface ErrorAnswer {
  error: { code: string; message: string; issues?: Array<{ path: string; message: string }> };
}

/** A 400 in the one error shape whose issues name `field`. */
async function expectInvalid(res: Response, field: string): Promise<ErrorAnswer> {
  expect(res.status).toBe(400);
  const body = (await res.json()) as ErrorAnswer;
  expect(body.error.code).toBe('invalid_request');
  expect(body.error.issues?.map((i) => i.path)).toContain(field);
  return body;
}

describe('a request body that is not valid UTF-8', () => {
  it('is refused with a 400, never decoded into another script', async () => {
    const start = vi.spyOn(client.workflow, 'start');
    // `echo "é"` with the é's second byte missing, and a lone continuation byte.
    for (const bytes of [[0x65, 0x63, 0x68, 0x6f, 0x20, 0xc3], [0x80]]) {
      const body = Buffer.concat([Buffer.from('{"script": "'), Buffer.from(bytes), Buffer.from('"}')]);
      const answer = await expectInvalid(await postJob(body), '(body)');
      expect(answer.error.message).toContain('UTF-8');
    }
    expect(start).not.toHaveBeenCalled();
  });

  it('valid UTF-8 still runs exactly the script sent', async () => {
    const job = await submit({ script: 'echo "é 日本 😀"' });
    await waitForEnd(job.id);
    expect(await (await api(`/jobs/${job.id}/logs`)).text()).toBe('é 日本 😀\n');
  });
});

describe('labels Temporal would refuse or could not find again', () => {
  const cases: Array<[string, Record<string, string>, string]> = [
    ['a NUL', { team: 'a\0b' }, 'labels.team'],
    ['a tab', { team: 'a\tb' }, 'labels.team'],
    ['a newline', { team: 'a\nb' }, 'labels.team'],
    ['a DEL', { team: 'a\x7fb' }, 'labels.team'],
    ['a double quote', { team: 'a"b' }, 'labels.team'],
    ['a backslash', { team: 'a\\b' }, 'labels.team'],
    ['an unpaired surrogate', { team: 'a\ud800b' }, 'labels.team'],
    // 9 labels of 250 characters: under the 256 per value, over the 2 KiB of one search attribute.
    [
      'more than 2 KiB in all',
      Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, 'v'.repeat(250)])),
      'labels',
    ],
  ];

  it.each(cases)('%s → 400 naming the field, nothing started', async (_what, labels, field) => {
    const start = vi.spyOn(client.workflow, 'start');
    const answer = await expectInvalid(await postJob(JSON.stringify({ script: 'true', labels })), field);
    expect(answer.error.message.length).toBeGreaterThan(0);
    expect(start).not.toHaveBeenCalled();
  });

  it('labels of exactly the limit are what Temporal takes, one byte more is what it refuses: refused here first', async () => {
    // ["k0:v…","k1:v…",…]: eight entries of 250 characters, the last one a character shorter.
    const labels = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, 'v'.repeat(i === 7 ? 249 : 250)]));
    const over = { ...labels, k7: 'v'.repeat(250) };
    expect(labelsAttributeBytes(labels)).toBe(MAX_LABELS_ATTRIBUTE_BYTES);
    expect(labelsAttributeBytes(over)).toBe(MAX_LABELS_ATTRIBUTE_BYTES + 1);

    // Through the real API: Temporal takes the largest, and finds the job by one of its labels.
    const job = await submit({ script: 'true', labels });
    expect(job.labels).toEqual(labels);
    await waitForEnd(job.id);
    await waitFor('the job to be listed by a label', async () => {
      const page = (await (await api(`/jobs?label=${encodeURIComponent(`k7:${labels.k7}`)}&limit=100`)).json()) as {
        jobs: Array<{ id: string }>;
      };
      return page.jobs.some((j) => j.id === job.id) ? true : undefined;
    });

    // One byte more: Temporal itself refuses it (started directly, not through the API)…
    const direct = client.workflow.start('runJob', {
      workflowId: `labels-over-${job.id}`,
      taskQueue: 'hodei-no-worker',
      args: [],
      typedSearchAttributes: new TypedSearchAttributes([{ key: LABELS_KEY, value: labelsAttribute(over) }]),
    });
    await expect(direct).rejects.toThrow();
    // …and the API refuses it with a 400 before asking.
    const start = vi.spyOn(client.workflow, 'start');
    await expectInvalid(await postJob(JSON.stringify({ script: 'true', labels: over })), 'labels');
    expect(start).not.toHaveBeenCalled();
  });

  it('a label filter with a character Temporal cannot query → 400 at once, Temporal never asked', async () => {
    const list = vi.spyOn(client.workflowService, 'listWorkflowExecutions');
    for (const value of ['a\0b', 'a"b', 'a\\b', 'a\tb', 'a\x7fb']) {
      await expectInvalid(await request(`/jobs?label=${encodeURIComponent(`team:${value}`)}`), 'label.0');
    }
    expect(list).not.toHaveBeenCalled();
    // What the rule lets through still lists (a quote, spaces, Unicode).
    const ok = await request(`/jobs?label=${encodeURIComponent("team:it's é 😀")}`);
    expect(ok.status).toBe(200);
    expect(list).toHaveBeenCalledTimes(1);
  });
});

describe('numbers in queries and headers are plain decimal integers', () => {
  const id = 'any-job';

  it.each([
    [`/jobs/${id}/logs?tail=0x10`, 'tail'],
    [`/jobs/${id}/logs?tail=%20%201`, 'tail'],
    [`/jobs/${id}/logs?tail=1e3`, 'tail'],
    [`/jobs/${id}/logs?tail=+5`, 'tail'],
    [`/jobs/${id}/logs?tail=`, 'tail'],
    [`/jobs/${id}/logs?tail=0`, 'tail'],
    [`/jobs/${id}/logs/stream?after=`, 'after'],
    [`/jobs/${id}/logs/stream?after=0x1`, 'after'],
    [`/jobs/${id}/logs/stream?after=-1`, 'after'],
    [`/jobs/${id}/logs/stream?after=1.5`, 'after'],
    ['/jobs?limit=0x10', 'limit'],
    ['/jobs?limit=%2010', 'limit'],
  ])('%s → 400', async (path, field) => {
    await expectInvalid(await request(path), field);
  });

  // (Spaces around a header value are no part of it in HTTP: ' 1' is 1.)
  it.each(['0x1', '+1', '1 2', '1e1', '-1', 'abc'])('Last-Event-ID: %j → 400', async (value) => {
    await expectInvalid(
      await request(`/jobs/${id}/logs/stream`, { headers: { 'last-event-id': value } }),
      'last-event-id',
    );
  });

  it('decimal positions work; an empty Last-Event-ID means the start (as the SSE spec has it)', async () => {
    const job = await submit({ script: 'echo one; echo two; echo three' });
    await waitForEnd(job.id);
    expect(await (await api(`/jobs/${job.id}/logs?tail=02`)).text()).toBe('two\nthree\n');
    const stream = async (init: RequestInit, query = '') => {
      const text = await (await api(`/jobs/${job.id}/logs/stream${query}`, init)).text();
      return [...text.matchAll(/"line":"([^"]*)"/g)].map((m) => m[1]);
    };
    expect(await stream({ headers: { 'last-event-id': '' } })).toEqual(['one', 'two', 'three']);
    expect(await stream({ headers: { 'last-event-id': '' } }, '?after=1')).toEqual(['two', 'three']);
    expect(await stream({ headers: { 'last-event-id': '2' } }, '?after=1')).toEqual(['three']);
    expect(await stream({}, '?after=0')).toEqual(['one', 'two', 'three']);
  });
});

describe('list cursors', () => {
  it('a forged cursor is refused at once, before Temporal sees its token', async () => {
    const label = `cursor-${Date.now()}`;
    const jobs = [
      await submit({ script: 'true', labels: { suite: label } }),
      await submit({ script: 'true', labels: { suite: label } }),
    ];
    await Promise.all(jobs.map((j) => waitForEnd(j.id)));
    const query = `label=${encodeURIComponent(`suite:${label}`)}&limit=1`;
    const first = await waitFor('a first page with a cursor', async () => {
      const page = (await (await request(`/jobs?${query}`)).json()) as { jobs: unknown[]; nextCursor?: string };
      return page.nextCursor ? page : undefined;
    });
    const cursor = first.nextCursor!;
    // The real cursor pages on.
    expect((await request(`/jobs?${query}&cursor=${cursor}`)).status).toBe(200);

    const list = vi.spyOn(client.workflowService, 'listWorkflowExecutions');
    // Another token inside the cursor's own framing; a flipped character; a cut one; garbage.
    const forgedToken = (() => {
      const payload = cursor.slice(0, -22);
      const parsed = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { q: string; t: string };
      const swapped = Buffer.from(
        JSON.stringify({ q: parsed.q, t: Buffer.from('{"forged":true}').toString('base64') }),
      ).toString('base64url');
      return swapped + cursor.slice(-22);
    })();
    const flipped = `${cursor.slice(0, 5)}${cursor[5] === 'A' ? 'B' : 'A'}${cursor.slice(6)}`;
    for (const bad of [
      forgedToken,
      flipped,
      cursor.slice(0, -1),
      cursor.slice(0, 22),
      'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    ]) {
      const res = await request(`/jobs?${query}&cursor=${bad}`);
      const body = await expectInvalid(res, 'cursor');
      expect(body.error.message).toContain('cursor');
    }
    expect(list).not.toHaveBeenCalled();
  });

  it('the stack API refuses a forged cursor too, and pages with real ones', async () => {
    const page = (await (await api('/jobs?limit=1')).json()) as { nextCursor?: string };
    expect(page.nextCursor).toBeDefined();
    expect((await api(`/jobs?limit=1&cursor=${page.nextCursor}`)).status).toBe(200);
    const res = await api(`/jobs?limit=1&cursor=${page.nextCursor!.slice(0, -3)}AAA`);
    expect(res.status).toBe(400);
  });
});

/** Sends raw bytes to the stack's API and reads its whole answer (it closes the connection). */
function rawRequest(bytes: string): Promise<string> {
  const url = new URL(stack().apiUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', reject);
    socket.setTimeout(30_000, () => socket.destroy(new Error('no answer in 30 s')));
    socket.write(bytes);
  });
}

/** A raw HTTP answer: status and its JSON body. */
function parseRaw(answer: string): { status: number; contentType?: string; body: ErrorAnswer } {
  const [head, ...rest] = answer.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head!)?.[1]);
  const contentType = /^content-type:\s*(.+)$/im.exec(head!)?.[1];
  return { status, contentType, body: JSON.parse(rest.join('\r\n\r\n')) as ErrorAnswer };
}

describe('HTTP-level errors answer in the one error shape', () => {
  const auth = () => `Authorization: Bearer ${stack().apiToken}\r\n`;

  it('a bad Content-Length → 400 JSON', async () => {
    const answer = parseRaw(
      await rawRequest(
        `POST /jobs HTTP/1.1\r\nHost: x\r\n${auth()}Content-Type: application/json\r\nContent-Length: abc\r\n\r\n{}`,
      ),
    );
    expect(answer.status).toBe(400);
    expect(answer.contentType).toMatch(/^application\/json/);
    expect(answer.body.error.code).toBe('invalid_request');
  });

  it('two different Content-Lengths → 400 JSON', async () => {
    const answer = parseRaw(
      await rawRequest(`POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}`),
    );
    expect(answer.status).toBe(400);
    expect(answer.body.error.message.length).toBeGreaterThan(0);
  });

  it('headers over the limit → 431 JSON', async () => {
    const answer = parseRaw(
      await rawRequest(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`),
    );
    expect(answer.status).toBe(431);
    expect(answer.contentType).toMatch(/^application\/json/);
    expect(answer.body.error.code).toBe('headers_too_large');
  });

  it('garbage instead of a request line → 400 JSON; the server keeps answering', async () => {
    const answer = parseRaw(await rawRequest('\x00\x01 not http\r\n\r\n'));
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('invalid_request');
    expect((await api('/healthz')).status).toBe(200);
  });
});
