import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
// Only the variables the file reads: the result must not depend on the caller's environment.
const compose = (args: string[], env: Record<string, string> = {}) =>
  run('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), ...args], {
    env: { PATH: process.env.PATH, ...env },
  });

describe('docker-compose.yml (production topology)', () => {
  it('is valid for docker-compose and runs every part of the topology', async () => {
    await compose(['config', '-q'], { HODEI_API_TOKENS: 'a-token-of-24-characters' });
    const { stdout } = await compose(['config', '--services'], { HODEI_API_TOKENS: 'a-token-of-24-characters' });
    expect(stdout.trim().split('\n').sort()).toEqual(
      ['api', 'postgresql', 'temporal', 'temporal-init', 'temporal-ui', 'worker', 'worker-image'].sort(),
    );
    const { stdout: config } = await compose(['config'], { HODEI_API_TOKENS: 'a-token-of-24-characters' });
    // Health checks on the long-running services, the Docker socket for the worker.
    expect(config.match(/healthcheck:/g)?.length).toBeGreaterThanOrEqual(4);
    expect(config).toContain('/var/run/docker.sock:/var/run/docker.sock');
    expect(config).toContain('HodeiLabels=KeywordList');
    // API and workers share the PostgreSQL log store, so they can run on several machines.
    expect(config.match(/HODEI_LOG_STORE: postgres:\/\/temporal:temporal@postgresql:5432\/hodei_logs/g)).toHaveLength(
      2,
    );
  });

  it('refuses to configure the API without tokens', async () => {
    await expect(compose(['config', '-q'])).rejects.toThrow(/HODEI_API_TOKENS/);
  });

  it('builds the app image FROM an official Node >= 20.3 image', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile.app'), 'utf8');
    const image = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
    expect(dockerfile).toMatch(/^FROM \$\{NODE_IMAGE\}$/m);
    const [major, minor] = (/^node:(\d+)\.(\d+)/.exec(image ?? '') ?? []).slice(1).map(Number);
    expect(major! > 20 || (major === 20 && minor! >= 3), `image ${image}`).toBe(true);
  });
});
