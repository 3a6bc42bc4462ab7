import { createHash } from 'node:crypto';
import { z } from '@hono/zod-openapi';

/** The `Idempotency-Key` request header of `POST /jobs`. */
export const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .regex(/^[\x21-\x7e]{1,255}$/, 'must be 1-255 printable ASCII characters')
    .optional()
    .openapi({
      description:
        'Submits with the same key get the same job (the first one), never a second container; kept as long as Temporal keeps the job.',
    }),
});

/**
 * The job id for an idempotency key: a UUID-shaped SHA-256 of it, so every API replica derives
 * the same workflow id and Temporal's id uniqueness does the deduplication. `kind` keeps the ids
 * of other workflows (pipelines) started with the same key apart from the job's.
 */
export function idempotentJobId(key: string, kind = 'hodei-idempotency-key'): string {
  const hex = createHash('sha256').update(`${kind}:${key}`).digest('hex');
  // RFC 9562 version 8 (custom) and variant bits.
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** A hash of the request, to tell a retry (same spec) from a reused key (another spec). */
export function specFingerprint(spec: unknown): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('base64url');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
