import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiTokens, hashToken, TOKEN_FILE, tokenScopes } from '../../api/auth.js';
import { parseTokenEntry, requiredScope } from '../../domain/api-scopes.js';
import { ConfigError, loadConfig } from '../../domain/config.js';

const ALL = ['read', 'submit', 'cancel'];
const scopesOf = (token: string, tokens: ReturnType<typeof apiTokens>) => {
  const scopes = tokenScopes(token, tokens);
  return scopes && [...scopes].sort();
};

describe('API tokens', () => {
  it('matches configured tokens, in clear or as sha256:<hex>, and nothing else', () => {
    const hashed = hashToken('second-token-0123456789').toString('hex');
    const tokens = apiTokens({
      HODEI_API_TOKENS: ['first-token-0123456789', `sha256:${hashed}`],
      HODEI_DATA_DIR: '/nonexistent',
    });
    expect(scopesOf('first-token-0123456789', tokens)).toEqual([...ALL].sort());
    expect(scopesOf('second-token-0123456789', tokens)).toEqual([...ALL].sort());
    expect(tokenScopes(`sha256:${hashed}`, tokens)).toBeUndefined();
    expect(tokenScopes('first-token-012345678', tokens)).toBeUndefined();
    expect(tokenScopes('', tokens)).toBeUndefined();
  });

  it('takes scopes after a colon, joined by +; write is submit and cancel; none is every scope', () => {
    const hashed = hashToken('hashed-reader-0123456789').toString('hex');
    const tokens = apiTokens({
      HODEI_API_TOKENS: [
        'reader-token-0123456789:read',
        'ci-token-0123456789:read+submit',
        'ops-token-0123456789:write',
        `sha256:${hashed}:read`,
      ],
      HODEI_DATA_DIR: '/nonexistent',
    });
    expect(scopesOf('reader-token-0123456789', tokens)).toEqual(['read']);
    expect(scopesOf('ci-token-0123456789', tokens)).toEqual(['read', 'submit']);
    expect(scopesOf('ops-token-0123456789', tokens)).toEqual(['cancel', 'submit']);
    expect(scopesOf('hashed-reader-0123456789', tokens)).toEqual(['read']);
    // The scopes are not part of the token.
    expect(tokenScopes('reader-token-0123456789:read', tokens)).toBeUndefined();
  });

  it('refuses a misspelt scope or a token with a colon, never repeating the token', () => {
    expect(() => parseTokenEntry('reader-token-0123456789:reed')).toThrow(/unknown scope "reed"/);
    expect(() => parseTokenEntry('reader-token-0123456789:')).toThrow(/unknown scope ""/);
    expect(() => parseTokenEntry('short:read')).toThrow(/at least 16/);
    expect(() => parseTokenEntry(`sha256:${'a'.repeat(65)}`)).toThrow(/64 hex/);
    try {
      loadConfig({ HODEI_API_TOKENS: 'fine-token-0123456789,secret-token-0123456789:reed', HODEI_INSTANCE_ID: 'x' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/HODEI_API_TOKENS: entry 2: unknown scope "reed"/);
      expect((err as Error).message).not.toContain('secret-token');
    }
  });

  it('needs read to read, submit to submit, cancel to cancel', () => {
    expect(requiredScope('GET', '/jobs')).toBe('read');
    expect(requiredScope('get', '/jobs/{id}/logs/stream')).toBe('read');
    expect(requiredScope('GET', '/metrics')).toBe('read');
    expect(requiredScope('POST', '/jobs')).toBe('submit');
    expect(requiredScope('POST', '/jobs/{id}/cancel')).toBe('cancel');
    expect(requiredScope('post', '/jobs/5f0c/cancel')).toBe('cancel');
  });

  it('parses HODEI_API_TOKENS as a comma-separated list and refuses short tokens', () => {
    const config = loadConfig({
      HODEI_API_TOKENS: ' aaaaaaaaaaaaaaaa , bbbbbbbbbbbbbbbb:read',
      HODEI_INSTANCE_ID: 'x',
    });
    expect(config.HODEI_API_TOKENS).toEqual(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb:read']);
    expect(() => loadConfig({ HODEI_API_TOKENS: 'short', HODEI_INSTANCE_ID: 'x' })).toThrow(ConfigError);
  });

  it('with none configured, creates one token in the data dir (mode 0600), with every scope, and keeps it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hodei-auth-'));
    try {
      const first = apiTokens({ HODEI_API_TOKENS: [], HODEI_DATA_DIR: dir });
      const again = apiTokens({ HODEI_API_TOKENS: [], HODEI_DATA_DIR: dir });
      expect(first).toEqual(again);
      expect([...first[0]!.scopes].sort()).toEqual([...ALL].sort());
      expect(statSync(path.join(dir, TOKEN_FILE)).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
