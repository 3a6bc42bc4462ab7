import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DefaultPayloadConverter, type Payload } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { codecApp } from '../../api/codec-server.js';
import { ConfigError, loadConfig } from '../../domain/config.js';
import {
  AesGcmPayloadCodec,
  codecKeyId,
  codecKeys,
  ENCODING_ENCRYPTED,
  METADATA_KEY_ID,
  PayloadDecryptError,
  UnknownCodecKeyError,
} from '../../domain/payload-codec.js';

const converter = new DefaultPayloadConverter();
const SECRET = 'hunter2-very-secret';
const plain = (): Payload[] => [
  converter.toPayload({ secrets: { TOKEN: SECRET }, n: 1 }),
  converter.toPayload(null),
  converter.toPayload(new Uint8Array([1, 2, 3])),
];
const text = (p: Payload) => Buffer.from(p.data ?? []).toString('latin1') + JSON.stringify(p.metadata);
const meta = (p: Payload, key: string) => Buffer.from(p.metadata![key]!).toString();

describe('AesGcmPayloadCodec', () => {
  const key = randomBytes(32);
  const codec = new AesGcmPayloadCodec([key]);

  it('round-trips payloads of every encoding, leaving nothing in clear', async () => {
    const encoded = await codec.encode(plain());
    for (const p of encoded) {
      expect(meta(p, 'encoding')).toBe(ENCODING_ENCRYPTED);
      expect(meta(p, METADATA_KEY_ID)).toBe(codecKeyId(key));
      expect(text(p)).not.toContain(SECRET);
      expect(text(p)).not.toContain('json/plain');
    }
    const decoded = await codec.decode(encoded);
    expect(decoded.map((p) => converter.fromPayload(p))).toEqual([
      { secrets: { TOKEN: SECRET }, n: 1 },
      null,
      new Uint8Array([1, 2, 3]),
    ]);
  });

  it('uses a fresh IV each time: the same value never encrypts the same way twice', async () => {
    const [a] = await codec.encode([converter.toPayload(SECRET)]);
    const [b] = await codec.encode([converter.toPayload(SECRET)]);
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
  });

  it('refuses a payload that was tampered with', async () => {
    const [encoded] = await codec.encode([converter.toPayload(SECRET)]);
    for (const at of [0, 20, encoded!.data!.length - 1]) {
      const data = Buffer.from(encoded!.data!);
      data[at] = data[at]! ^ 0x01;
      await expect(codec.decode([{ ...encoded!, data }])).rejects.toThrow(PayloadDecryptError);
    }
    await expect(codec.decode([{ ...encoded!, data: Buffer.alloc(10) }])).rejects.toThrow(PayloadDecryptError);
  });

  it('refuses a wrong key that claims the right id', async () => {
    const [encoded] = await codec.encode([converter.toPayload(SECRET)]);
    const other = randomBytes(32);
    const forged = {
      ...encoded!,
      metadata: { ...encoded!.metadata, [METADATA_KEY_ID]: Buffer.from(codecKeyId(other)) },
    };
    await expect(new AesGcmPayloadCodec([other]).decode([forged])).rejects.toThrow(PayloadDecryptError);
  });

  it('refuses a payload of a key it does not hold, naming the key id', async () => {
    const [encoded] = await codec.encode([converter.toPayload(SECRET)]);
    const stranger = new AesGcmPayloadCodec([randomBytes(32)]);
    await expect(stranger.decode([encoded!])).rejects.toThrow(UnknownCodecKeyError);
    await expect(stranger.decode([encoded!])).rejects.toThrow(codecKeyId(key));
  });

  it('rotates: a new first key encrypts, the previous one still decrypts', async () => {
    const [old] = await codec.encode([converter.toPayload('old')]);
    const rotated = new AesGcmPayloadCodec([randomBytes(32), key]);
    expect(rotated.keyId).not.toBe(codec.keyId);
    expect(converter.fromPayload((await rotated.decode([old!]))[0]!)).toBe('old');
    const [fresh] = await rotated.encode([converter.toPayload('new')]);
    expect(meta(fresh!, METADATA_KEY_ID)).toBe(rotated.keyId);
  });

  it('passes payloads that were never encrypted through (histories from before the codec)', async () => {
    const payloads = plain();
    expect(await codec.decode(payloads)).toEqual(payloads);
  });
});

describe('codec keys from the settings', () => {
  it('takes HODEI_CODEC_KEY, else makes one in the data dir (0600) and keeps it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hodei-codec-'));
    try {
      const configured = randomBytes(32).toString('base64');
      const previous = randomBytes(32).toString('base64');
      const config = loadConfig({
        HODEI_DATA_DIR: dir,
        HODEI_INSTANCE_ID: 'unit',
        HODEI_CODEC_KEY: configured,
        HODEI_CODEC_PREVIOUS_KEYS: previous,
      });
      expect(codecKeys(config).map((k) => k.toString('base64'))).toEqual([configured, previous]);

      const generated = codecKeys(loadConfig({ HODEI_DATA_DIR: dir, HODEI_INSTANCE_ID: 'unit' }));
      expect(generated).toHaveLength(1);
      expect(generated[0]!.length).toBe(32);
      expect(statSync(path.join(dir, 'codec-key')).mode & 0o777).toBe(0o600);
      expect(codecKeys(loadConfig({ HODEI_DATA_DIR: dir, HODEI_INSTANCE_ID: 'unit' }))[0]!.equals(generated[0]!)).toBe(
        true,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a key that is not base64 of 32 bytes, without repeating it', () => {
    for (const bad of ['short', randomBytes(16).toString('base64'), `${randomBytes(32).toString('hex')}`]) {
      expect(() => loadConfig({ HODEI_INSTANCE_ID: 'unit', HODEI_CODEC_KEY: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ HODEI_INSTANCE_ID: 'unit', HODEI_CODEC_KEY: bad })).not.toThrow(bad);
    }
    expect(() => loadConfig({ HODEI_INSTANCE_ID: 'unit', HODEI_CODEC_PREVIOUS_KEYS: 'nope' })).toThrow(
      /HODEI_CODEC_PREVIOUS_KEYS/,
    );
  });

  it('lets the Web UI origin in by default, as 127.0.0.1 and localhost', () => {
    const config = loadConfig({ HODEI_INSTANCE_ID: 'unit', HODEI_TEMPORAL_UI_URL: 'http://127.0.0.1:9233/' });
    expect(config.HODEI_CODEC_CORS_ORIGINS).toEqual(['http://127.0.0.1:9233', 'http://localhost:9233']);
    expect(config.HODEI_CODEC_PORT).toBe(8234);
    expect(loadConfig({ HODEI_INSTANCE_ID: 'unit', HODEI_CODEC_PORT: 'off' }).HODEI_CODEC_PORT).toBe('off');
  });
});

describe('the codec endpoint (Temporal codec server protocol)', () => {
  const codec = new AesGcmPayloadCodec([randomBytes(32)]);
  const UI = 'http://127.0.0.1:8233';
  const app = codecApp({ codec, allowedOrigins: [UI, 'http://localhost:8233'], port: 8234 });
  const toJson = (p: Payload) => ({
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v!).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? []).toString('base64'),
  });
  const post = (route: string, body: unknown, headers: Record<string, string> = {}) =>
    app.request(route, {
      method: 'POST',
      headers: { host: '127.0.0.1:8234', 'content-type': 'application/json', 'x-namespace': 'default', ...headers },
      body: JSON.stringify(body),
    });

  it('decodes what the codec encoded, and encodes for the UI', async () => {
    const encoded = await codec.encode([converter.toPayload({ SECRET })]);
    const res = await post('/decode', { payloads: encoded.map(toJson) }, { origin: UI });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(UI);
    const { payloads } = (await res.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
    expect(Buffer.from(payloads[0]!.metadata.encoding!, 'base64').toString()).toBe('json/plain');
    expect(JSON.parse(Buffer.from(payloads[0]!.data, 'base64').toString())).toEqual({ SECRET });

    const enc = await post('/encode', { payloads });
    const back = (await enc.json()) as { payloads: Array<{ metadata: Record<string, string> }> };
    expect(Buffer.from(back.payloads[0]!.metadata.encoding!, 'base64').toString()).toBe(ENCODING_ENCRYPTED);
  });

  it('answers the UI origin’s preflight, and refuses other origins and hosts', async () => {
    const preflight = (origin: string) =>
      app.request('/decode', {
        method: 'OPTIONS',
        headers: {
          host: 'localhost:8234',
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,x-namespace',
        },
      });
    const ok = await preflight('http://localhost:8233');
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe('http://localhost:8233');
    expect(ok.headers.get('access-control-allow-headers')).toMatch(/X-Namespace/i);
    expect(ok.headers.get('access-control-allow-methods')).toContain('POST');

    const evil = await preflight('http://evil.example');
    expect(evil.status).toBe(403);
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    const evilPost = await post('/decode', { payloads: [] }, { origin: 'http://evil.example' });
    expect(evilPost.status).toBe(403);
    expect(evilPost.headers.get('access-control-allow-origin')).toBeNull();
    // A DNS name rebound to 127.0.0.1 still names itself in Host.
    expect((await post('/decode', { payloads: [] }, { host: 'rebound.example:8234' })).status).toBe(403);
  });

  it('answers a bad body or a foreign payload with 400 in the one error shape', async () => {
    expect((await post('/decode', { nope: 1 })).status).toBe(400);
    const [foreign] = await new AesGcmPayloadCodec([randomBytes(32)]).encode([converter.toPayload(1)]);
    const res = await post('/decode', { payloads: [toJson(foreign!)] });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: { code: 'invalid_request', message: expect.stringMatching(/unknown key/) },
    });
  });
});
