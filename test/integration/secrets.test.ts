import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { api, getJob, logs, stack, submit, waitForEnd } from '../support/api-client.js';
import { temporalCli } from '../support/temporal.js';

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const unb64 = (text: string) => Buffer.from(text, 'base64').toString('latin1');

/**
 * Every payload ({metadata, data}) anywhere in a JSON document, but those of search attributes:
 * Temporal indexes them, so no codec ever touches them (they hold state, labels, host).
 */
function payloadsIn(value: unknown, found: JsonPayload[] = []): JsonPayload[] {
  if (Array.isArray(value)) for (const v of value) payloadsIn(v, found);
  else if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (o.metadata && typeof o.metadata === 'object' && 'encoding' in o.metadata) found.push(o as JsonPayload);
    else for (const [k, v] of Object.entries(o)) if (k !== 'searchAttributes') payloadsIn(v, found);
  }
  return found;
}

/** The text of a JSON document with every base64 value in it decoded too, to search for a secret. */
function expectNoSecret(json: string, secret: string, what: string) {
  expect(json, what).not.toContain(secret);
  expect(json, what).not.toContain(b64(secret));
  for (const p of payloadsIn(JSON.parse(json))) {
    expect(unb64(p.data ?? ''), what).not.toContain(secret);
    expect(unb64(p.metadata?.encoding ?? ''), `${what}: every payload encrypted`).toBe('binary/encrypted');
  }
}

/** The workflow input payloads of a history in JSON (`temporal workflow show --output json`). */
const startInput = (history: string): JsonPayload[] =>
  (
    JSON.parse(history) as {
      events: Array<{ workflowExecutionStartedEventAttributes?: { input: { payloads: JsonPayload[] } } }>;
    }
  ).events[0]!.workflowExecutionStartedEventAttributes!.input.payloads;

const connectsTo = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

describe('secrets', () => {
  it('reach the script as env vars, are masked in the stored log, and never show in Temporal, the API or the logs', async () => {
    const secret = `s3cr3t-${randomUUID()}`;
    const plain = `plain-${randomUUID()}`;
    const script = [
      'echo "length=${#API_KEY}"',
      'printf %s "$API_KEY" | sha256sum | cut -c1-64',
      'echo "$API_KEY"',
      'echo "plain=$PLAIN"',
      // stdout and stderr are copied by separate pipes: a moment apart, so their order is sure.
      'sleep 0.5; echo "before $API_KEY middle $API_KEY after" >&2',
    ].join('\n');
    const job = await submit({
      script,
      env: { PLAIN: plain },
      secrets: { API_KEY: secret },
      labels: { test: 'secrets' },
    });
    expect(JSON.stringify(job)).not.toContain(secret);
    const done = await waitForEnd(job.id);
    expect(done.state).toBe('SUCCEEDED');

    const sha = createHash('sha256').update(secret).digest('hex');
    expect(await logs(job.id)).toBe(
      `length=${secret.length}\n${sha}\n***\nplain=${plain}\nbefore *** middle *** after\n`,
    );

    // The API never echoes it: the job, the list.
    expect(JSON.stringify(await getJob(job.id))).not.toContain(secret);
    expect(await (await api(`/jobs?label=test:secrets&limit=100`)).text()).not.toContain(secret);

    // Temporal holds every payload of the job encrypted: history (input, activity input and
    // results, memo upserts) and describe (memo, last heartbeats).
    const info = stack();
    const history = await temporalCli(info, ['workflow', 'show', '--workflow-id', job.id, '--output', 'json']);
    expectNoSecret(history, secret, 'temporal workflow show');
    expect(history, 'env values are encrypted too').not.toContain(plain);
    const described = await temporalCli(info, ['workflow', 'describe', '--workflow-id', job.id, '--output', 'json']);
    expectNoSecret(described, secret, 'temporal workflow describe');

    // Nor do the platform's own logs (the stack's API, worker and Temporal output).
    for (const file of readdirSync(info.logDir).filter((f) => f.endsWith('.log'))) {
      expect(readFileSync(path.join(info.logDir, file), 'utf8'), file).not.toContain(secret);
    }

    // The codec endpoint decodes the job's input from that history, for the Web UI's origin.
    const started = startInput(history);
    const res = await fetch(`${info.codecUrl}/decode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-namespace': info.namespace, origin: info.temporalUiUrl },
      body: JSON.stringify({ payloads: started }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(info.temporalUiUrl);
    const decoded = (await res.json()) as { payloads: JsonPayload[] };
    const input = JSON.parse(Buffer.from(decoded.payloads[0]!.data!, 'base64').toString('utf8')) as {
      secrets: Record<string, string>;
    };
    expect(input.secrets).toEqual({ API_KEY: secret });

    // …and the temporal CLI reads the history with it.
    const readable = await temporalCli(info, [
      'workflow',
      'show',
      '--workflow-id',
      job.id,
      '--output',
      'json',
      '--codec-endpoint',
      info.codecUrl,
    ]);
    expect(unb64(startInput(readable)[0]!.data!)).toContain(secret);
  });

  it('the codec endpoint answers CORS only for the Web UI origin, and listens on 127.0.0.1 only', async () => {
    const { codecUrl, temporalUiUrl } = stack();
    const preflight = (origin: string) =>
      fetch(`${codecUrl}/decode`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,x-namespace',
        },
      });
    const ui = await preflight(temporalUiUrl);
    expect(ui.status).toBe(204);
    expect(ui.headers.get('access-control-allow-origin')).toBe(temporalUiUrl);
    const other = await preflight('http://attacker.example');
    expect(other.status).toBe(403);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();

    const port = Number(new URL(codecUrl).port);
    expect(await connectsTo('127.0.0.1', port)).toBe(true);
    // Bound to 127.0.0.1, not to all of loopback nor to every address.
    expect(await connectsTo('127.0.0.2', port)).toBe(false);
    expect(await connectsTo('::1', port)).toBe(false);
  });

  it('a secret whose name is also in env is refused', async () => {
    const res = await api('/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ script: 'true', env: { TOKEN: 'a' }, secrets: { TOKEN: 'b' } }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { issues: [{ path: 'secrets.TOKEN' }] } });
  });
});
