import { describe, expect, it } from 'vitest';
import { clientErrorResponse } from '../../api/http-errors.js';
import { BadCursorError, CursorCodec } from '../../api/jobs-list.js';
import { decimalInt } from '../../api/params.js';
import {
  JobSpecSchema,
  labelsAttributeBytes,
  labelValueOk,
  MAX_LABELS_ATTRIBUTE_BYTES,
} from '../../domain/job-spec.js';

describe('decimalInt', () => {
  const tail = decimalInt(1, 1_000_000);
  it.each(['1', '10', '007', '1000000'])('takes %j', (text) => {
    expect(tail.safeParse(text)).toEqual({ success: true, data: Number(text) });
  });
  it.each(['', ' 1', '1 ', '0x10', '1e3', '+1', '-1', '1.5', '0', '1000001', '99999999999999999', '１'])(
    'refuses %j',
    (text) => {
      expect(tail.safeParse(text).success).toBe(false);
    },
  );
});

describe('label values', () => {
  it.each(['', 'team-a', "it's", 'é 日本 😀', 'a b', 'a:b', 'a\u2661b'])('takes %j', (value) => {
    expect(labelValueOk(value)).toBe(true);
  });
  it.each(['a\0b', 'a\tb', 'a\nb', 'a\rb', 'a\x7fb', 'a\x85b', 'a"b', 'a\\b', 'a\ud800b', '\udc00'])(
    'refuses %j',
    (value) => {
      expect(labelValueOk(value)).toBe(false);
    },
  );

  it('counts the search attribute as Temporal does: the JSON of ["key:value", …] in UTF-8', () => {
    expect(labelsAttributeBytes({})).toBe(2);
    expect(labelsAttributeBytes({ a: 'b' })).toBe('["a:b"]'.length);
    expect(labelsAttributeBytes({ a: 'é', b: 'c' })).toBe(Buffer.byteLength('["a:é","b:c"]'));
    const at = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, 'v'.repeat(i === 7 ? 249 : 250)]));
    expect(JobSpecSchema.safeParse({ script: 'x', labels: at }).success).toBe(true);
    const over = JobSpecSchema.safeParse({ script: 'x', labels: { ...at, k7: 'v'.repeat(250) } });
    expect(over.success).toBe(false);
    expect(over.error?.issues.map((i) => i.path.join('.'))).toEqual(['labels']);
    expect(over.error?.issues[0]?.message).toContain(String(MAX_LABELS_ATTRIBUTE_BYTES));
  });
});

describe('CursorCodec', () => {
  const key = Buffer.alloc(32, 1);
  const codec = new CursorCodec([key]);
  const token = Buffer.from('temporal page token');

  it('round-trips a token for its filter, with a previous key too', () => {
    const cursor = codec.encode('q', token);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(codec.decode('q', cursor)).toEqual(token);
    expect(new CursorCodec([Buffer.alloc(32, 2), key]).decode('q', cursor)).toEqual(token);
  });

  it('refuses another filter, another key, and every altered cursor', () => {
    const cursor = codec.encode('q', token);
    expect(() => codec.decode('other', cursor)).toThrow('another filter');
    expect(() => new CursorCodec([Buffer.alloc(32, 2)]).decode('q', cursor)).toThrow(BadCursorError);
    for (let i = 0; i < cursor.length; i += 1) {
      const altered = `${cursor.slice(0, i)}${cursor[i] === 'A' ? 'B' : 'A'}${cursor.slice(i + 1)}`;
      expect(() => codec.decode('q', altered)).toThrow(BadCursorError);
    }
    for (const bad of ['', 'A', cursor.slice(0, -1), cursor.slice(0, 22), `${cursor}A`])
      expect(() => codec.decode('q', bad)).toThrow(BadCursorError);
  });
});

describe('clientErrorResponse', () => {
  it.each([
    ['HPE_HEADER_OVERFLOW', 431, 'headers_too_large'],
    ['HPE_INVALID_CONTENT_LENGTH', 400, 'invalid_request'],
    ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'request_timeout'],
    [undefined, 400, 'invalid_request'],
  ])('%s → %i in the one error shape', (code, status, errorCode) => {
    const raw = clientErrorResponse(code);
    const [head, body] = raw.split('\r\n\r\n');
    expect(head).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(head).toContain('Content-Type: application/json');
    expect(head).toContain(`Content-Length: ${Buffer.byteLength(body!)}`);
    expect(JSON.parse(body!)).toMatchObject({ error: { code: errorCode } });
  });
});
