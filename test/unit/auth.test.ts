import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiTokenHashes, hashToken, TOKEN_FILE, tokenMatches } from '../../api/auth.js';
import { ConfigError, loadConfig } from '../../domain/config.js';

describe('API tokens', () => {
  it('matches configured tokens, in clear or as sha256:<hex>, and nothing else', () => {
    const hashed = hashToken('second-token-0123456789').toString('hex');
    const hashes = apiTokenHashes({ HODEI_API_TOKENS: ['first-token-0123456789', `sha256:${hashed}`], HODEI_DATA_DIR: '/nonexistent' });
    expect(tokenMatches('first-token-0123456789', hashes)).toBe(true);
    expect(tokenMatches('second-token-0123456789', hashes)).toBe(true);
    expect(tokenMatches(`sha256:${hashed}`, hashes)).toBe(false);
    expect(tokenMatches('first-token-012345678', hashes)).toBe(false);
    expect(tokenMatches('', hashes)).toBe(false);
  });

  it('parses HODEI_API_TOKENS as a comma-separated list and refuses short tokens', () => {
    const config = loadConfig({ HODEI_API_TOKENS: ' aaaaaaaaaaaaaaaa , bbbbbbbbbbbbbbbb', HODEI_INSTANCE_ID: 'x' });
    expect(config.HODEI_API_TOKENS).toEqual(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb']);
    expect(() => loadConfig({ HODEI_API_TOKENS: 'short', HODEI_INSTANCE_ID: 'x' })).toThrow(ConfigError);
  });

  it('with none configured, creates one token in the data dir (mode 0600) and keeps it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hodei-auth-'));
    try {
      const first = apiTokenHashes({ HODEI_API_TOKENS: [], HODEI_DATA_DIR: dir });
      const again = apiTokenHashes({ HODEI_API_TOKENS: [], HODEI_DATA_DIR: dir });
      expect(first).toEqual(again);
      expect(statSync(path.join(dir, TOKEN_FILE)).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
