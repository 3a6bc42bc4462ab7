import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { API_SCOPES, parseTokenEntry, requiredScope, type ApiScope } from '../domain/api-scopes.js';
import type { Config } from '../domain/config.js';
import { readOrCreateDataFile } from '../domain/data-dir-file.js';
import { errorBody } from './errors.js';

/** Routes anyone may call: load balancers and orchestrators probe them without a token. */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

/** File in the data dir holding the token `npm start` made when none was configured. */
export const TOKEN_FILE = 'api-token';

const HASHED = /^sha256:([0-9a-f]{64})$/i;

/** An accepted token: only its SHA-256 is kept in memory, with what it may do. */
export interface ApiToken {
  hash: Buffer;
  scopes: ReadonlySet<ApiScope>;
}

/** SHA-256 of a token; only these are kept in memory. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** A token with the given scopes (default: every one), for wiring and tests. */
export function apiToken(token: string, scopes: readonly ApiScope[] = API_SCOPES): ApiToken {
  return { hash: hashToken(token), scopes: new Set(scopes) };
}

/**
 * The accepted tokens. `HODEI_API_TOKENS` entries are tokens or `sha256:<hex>` of a token (so the
 * configuration need not hold it in clear), each optionally with its scopes (`TOKEN:read+submit`;
 * none: every scope). With none configured, the token in `<data dir>/api-token` is used, with every
 * scope, created on first start.
 */
export function apiTokens(config: Pick<Config, 'HODEI_API_TOKENS' | 'HODEI_DATA_DIR'>): ApiToken[] {
  const entries =
    config.HODEI_API_TOKENS.length > 0 ? config.HODEI_API_TOKENS : [ensureTokenFile(config.HODEI_DATA_DIR)];
  return entries.map((entry) => {
    const { credential, scopes } = parseTokenEntry(entry);
    const hashed = HASHED.exec(credential);
    return { hash: hashed ? Buffer.from(hashed[1]!, 'hex') : hashToken(credential), scopes: new Set(scopes) };
  });
}

/** Reads the data dir's token, creating a random one (mode 0600) when there is none. */
export function ensureTokenFile(dataDir: string): string {
  return readOrCreateDataFile(dataDir, TOKEN_FILE, () => `hodei_${randomBytes(24).toString('base64url')}`);
}

/**
 * The scopes of `token` (of every entry it matches), or undefined when it matches none. Compares
 * against every hash in constant time.
 */
export function tokenScopes(token: string, tokens: readonly ApiToken[]): ReadonlySet<ApiScope> | undefined {
  const presented = hashToken(token);
  let scopes: Set<ApiScope> | undefined;
  for (const entry of tokens) {
    if (timingSafeEqual(presented, entry.hash)) scopes = new Set([...(scopes ?? []), ...entry.scopes]);
  }
  return scopes;
}

/**
 * `Authorization: Bearer <token>` on every route but the open ones: 401 in the one error shape
 * without a valid token, 403 for a token lacking the route's scope (`requiredScope`). The header
 * is never logged.
 */
export function requireToken(tokens: readonly ApiToken[]): MiddlewareHandler {
  return async (c, next) => {
    if (OPEN_PATHS.has(c.req.path)) return next();
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const scopes = match ? tokenScopes(match[1]!, tokens) : undefined;
    if (!scopes) {
      c.header('WWW-Authenticate', 'Bearer realm="hodei"');
      const message = match ? 'invalid API token' : 'missing API token: send Authorization: Bearer <token>';
      return c.json(errorBody('unauthorized', message), 401);
    }
    const needed = requiredScope(c.req.method, c.req.path);
    if (!scopes.has(needed)) {
      c.header('WWW-Authenticate', `Bearer realm="hodei", error="insufficient_scope", scope="${needed}"`);
      return c.json(errorBody('forbidden', `this API token lacks the "${needed}" scope`), 403);
    }
    return next();
  };
}
