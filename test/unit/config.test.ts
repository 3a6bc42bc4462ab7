import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../domain/config.js';

describe('loadConfig', () => {
  it('has a default for every setting and keeps a generated installation id', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hodei-config-'));
    try {
      const config = loadConfig({ HODEI_DATA_DIR: dir });
      expect(config).toMatchObject({
        TEMPORAL_ADDRESS: '127.0.0.1:7233',
        TEMPORAL_NAMESPACE: 'default',
        HODEI_API_PORT: 8080,
        HODEI_WORKER_CAPACITY: 8,
        HODEI_RETENTION_DAYS: 30,
      });
      expect(config.HODEI_INSTANCE_ID).toMatch(/^hodei-/);
      expect(loadConfig({ HODEI_DATA_DIR: dir }).HODEI_INSTANCE_ID).toBe(config.HODEI_INSTANCE_ID);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('makes a missing data dir for this user only (0700), the installation id 0600', () => {
    const parent = mkdtempSync(path.join(tmpdir(), 'hodei-config-'));
    try {
      const dir = path.join(parent, 'data');
      loadConfig({ HODEI_DATA_DIR: dir });
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(statSync(path.join(dir, 'instance-id')).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it("has the reaper sweep often enough that a terminated job's container goes within 15 s, and logs by terminal", () => {
    const config = loadConfig({ HODEI_INSTANCE_ID: 'test-config' });
    expect(config.HODEI_REAPER_INTERVAL_SECONDS).toBeLessThanOrEqual(10);
    expect(config.HODEI_LOG_FORMAT).toBe('auto');
    expect(loadConfig({ HODEI_INSTANCE_ID: 'test-config', HODEI_LOG_FORMAT: 'json' }).HODEI_LOG_FORMAT).toBe('json');
    expect(() => loadConfig({ HODEI_INSTANCE_ID: 'test-config', HODEI_LOG_FORMAT: 'yaml' })).toThrow(
      /HODEI_LOG_FORMAT/,
    );
  });

  it('takes HODEI_LOG_STORE: sqlite by default, or a PostgreSQL URL; refuses anything else without repeating it', () => {
    const base = { HODEI_INSTANCE_ID: 'test-config' };
    expect(loadConfig(base).HODEI_LOG_STORE).toBe('sqlite');
    expect(loadConfig({ ...base, HODEI_LOG_STORE: '' }).HODEI_LOG_STORE).toBe('sqlite');
    expect(loadConfig({ ...base, HODEI_LOG_STORE: 'sqlite' }).HODEI_LOG_STORE).toBe('sqlite');
    for (const url of ['postgres://hodei:pw@db:5432/logs', 'postgresql://db/logs?sslmode=require']) {
      expect(loadConfig({ ...base, HODEI_LOG_STORE: url }).HODEI_LOG_STORE).toBe(url);
    }
    for (const bad of [
      'mysql://u:secret@db/logs',
      'postgres://',
      'sqlite3',
      'postgres//u:secret@db',
      'postgres://u:secret@[bad',
    ]) {
      expect(() => loadConfig({ ...base, HODEI_LOG_STORE: bad })).toThrow(
        'HODEI_LOG_STORE: must be "sqlite" or a postgres://… or postgresql://… URL',
      );
      expect(() => loadConfig({ ...base, HODEI_LOG_STORE: bad })).not.toThrow(/secret/);
    }
  });

  it('refuses bad values, naming each', () => {
    expect(() => loadConfig({ HODEI_API_PORT: 'eighty', HODEI_WORKER_CAPACITY: '0', HODEI_INSTANCE_ID: 'x' })).toThrow(
      ConfigError,
    );
    try {
      loadConfig({ HODEI_API_PORT: 'eighty', HODEI_WORKER_CAPACITY: '0', HODEI_INSTANCE_ID: 'x' });
    } catch (err) {
      expect((err as Error).message).toContain('HODEI_API_PORT');
      expect((err as Error).message).toContain('HODEI_WORKER_CAPACITY');
    }
  });
});
