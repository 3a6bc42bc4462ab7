import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { Config } from '../domain/config.js';
import { readOrCreateDataFile } from '../domain/data-dir-file.js';
import { errorBody } from './errors.js';

/** Routes anyone may call: load balancers and orchestrators probe them without a token. */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

/** File in the data dir holding the token `npm start` made when none was configured. */
export const TOKEN_FILE = 'api-token';

const HASHED = /^sha256:([0-9a-f]{64})$/i;

/** SHA-256 of a token; only these are kept in memory. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * The accepted tokens as SHA-256 hashes. `HODEI_API_TOKENS` entries are tokens or `sha256:<hex>`
 * of a token (so the configuration need not hold it in clear). With none configured, the token in
 * `<data dir>/api-token` is used, created on first start.
 */
export function apiTokenHashes(config: Pick<Config, 'HODEI_API_TOKENS' | 'HODEI_DATA_DIR'>): Buffer[] {
  const entries = config.HODEI_API_TOKENS.length > 0 ? config.HODEI_API_TOKENS : [ensureTokenFile(config.HODEI_DATA_DIR)];
  return entries.map((entry) => {
    const hashed = HASHED.exec(entry);
    return hashed ? Buffer.from(hashed[1]!, 'hex') : hashToken(entry);
  });
}

/** Reads the data dir's token, creating a random one (mode 0600) when there is none. */
export function ensureTokenFile(dataDir: string): string {
  return readOrCreateDataFile(dataDir, TOKEN_FILE, () => `hodei_${randomBytes(24).toString('base64url')}`);
}

/** True when `token` hashes to one of `hashes`; compares every hash in constant time. */
export function tokenMatches(token: string, hashes: readonly Buffer[]): boolean {
  const presented = hashToken(token);
  let match = false;
  for (const hash of hashes) match = timingSafeEqual(presented, hash) || match;
  return match;
}

/**
 * `Authorization: Bearer <token>` on every route but the open ones; 401 in the one error shape
 * otherwise. The header is never logged.
 */
export function requireToken(hashes: readonly Buffer[]): MiddlewareHandler {
  return async (c, next) => {
    if (OPEN_PATHS.has(c.req.path)) return next();
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match || !tokenMatches(match[1]!, hashes)) {
      c.header('WWW-Authenticate', 'Bearer realm="hodei"');
      const message = match ? 'invalid API token' : 'missing API token: send Authorization: Bearer <token>';
      return c.json(errorBody('unauthorized', message), 401);
    }
    return next();
  };
}
