/**
 * What an API token may do. `HODEI_API_TOKENS` entries are `TOKEN` (every scope) or
 * `TOKEN:SCOPE[+SCOPE…]`, TOKEN being a token or `sha256:<hex>` of one; `+` joins scopes because
 * `,` already separates entries.
 */
export const API_SCOPES = ['read', 'submit', 'cancel'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

/** Scope names an entry may use: the scopes, and `write` for submit and cancel both. */
const SCOPE_NAMES: Record<string, readonly ApiScope[]> = {
  read: ['read'],
  submit: ['submit'],
  cancel: ['cancel'],
  write: ['submit', 'cancel'],
};

const HASHED = /^sha256:[0-9a-f]{64}/i;
const TOKEN = /^[\x21-\x7e]{16,}$/;

/** One `HODEI_API_TOKENS` entry: the token (or `sha256:<hex>`) and what it may do. */
export interface TokenEntry {
  credential: string;
  scopes: readonly ApiScope[];
}

/**
 * Parses an entry; throws with a message that never repeats the token. A token may not contain
 * `:` (other than in `sha256:`): what follows one is scopes, and a misspelt scope is refused
 * rather than read as part of a token that could then do everything.
 */
export function parseTokenEntry(entry: string): TokenEntry {
  const hashed = HASHED.exec(entry)?.[0];
  const at = hashed ? hashed.length : entry.indexOf(':');
  const credential = at < 0 ? entry : entry.slice(0, at);
  if (!hashed && !TOKEN.test(credential))
    throw new Error('a token is at least 16 printable characters, with no spaces or ":"');
  if (at < 0 || at === entry.length) return { credential, scopes: API_SCOPES };
  if (entry[at] !== ':') throw new Error('sha256: takes 64 hex digits');
  const names = entry.slice(at + 1).split('+');
  const unknown = names.filter((name) => !Object.hasOwn(SCOPE_NAMES, name));
  if (unknown.length > 0) {
    throw new Error(
      `unknown scope ${unknown.map((n) => JSON.stringify(n)).join(', ')} (scopes: read, submit, cancel, write; joined by "+")`,
    );
  }
  return { credential, scopes: [...new Set(names.flatMap((name) => SCOPE_NAMES[name]!))] };
}

/**
 * The scope a request needs: reading (GET, HEAD) `read`; cancelling a job or a pipeline `cancel`;
 * anything else that writes (submitting a job or a pipeline; creating, changing, pausing,
 * triggering, deleting a schedule) `submit`. Takes a request path or a route template
 * (`/jobs/{id}/cancel`), so the API and its OpenAPI description say the same.
 */
export function requiredScope(method: string, path: string): ApiScope {
  const m = method.toUpperCase();
  if (m === 'GET' || m === 'HEAD') return 'read';
  if (/^\/(jobs|pipelines)\/[^/]+\/cancel$/.test(path)) return 'cancel';
  return 'submit';
}
