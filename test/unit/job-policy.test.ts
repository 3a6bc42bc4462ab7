import { describe, expect, it } from 'vitest';
import { graceSeconds, provisionIssues, type ProvisionRequest } from '../../activities/job-policy.js';
import { loadConfig } from '../../domain/config.js';

// The worker's own check of the jobs it receives: the API's rules and the operator's limits.
const limits = loadConfig({
  HODEI_DATA_DIR: '/nonexistent',
  HODEI_INSTANCE_ID: 'unit',
  HODEI_MAX_JOB_MEMORY_MB: '2048',
});
const request = (
  change: Partial<ProvisionRequest> = {},
  resources: Partial<ProvisionRequest['resources']> = {},
): ProvisionRequest => ({
  image: 'hodei-worker:latest',
  script: 'echo',
  env: {},
  ...change,
  resources: { cpus: 1, memoryMb: 128, pidsLimit: 64, scratchMb: 16, ...resources },
});

describe('provisionIssues', () => {
  it('passes what the API would have sent', () => {
    expect(provisionIssues(request(), limits)).toEqual([]);
    expect(provisionIssues(request({ secrets: { TOKEN: 'x' } }), limits)).toEqual([]);
  });

  it.each([
    ['an image outside the allowlist', request({ image: 'busybox:latest' }), 'image'],
    ['memory over the maximum', request({}, { memoryMb: 20_000 }), 'resources.memoryMb'],
    ['no memory limit (0: unlimited to Docker)', request({}, { memoryMb: 0 }), 'resources.memoryMb'],
    ['no process limit (-1)', request({}, { pidsLimit: -1 }), 'resources.pidsLimit'],
    ['no CPU limit (0)', request({}, { cpus: 0 }), 'resources.cpus'],
    [
      'a limit missing',
      { ...request(), resources: { cpus: 1, memoryMb: 128, pidsLimit: 64 } as ProvisionRequest['resources'] },
      'resources.scratchMb',
    ],
    ['a bad env name', request({ env: { 'A=B': 'x' } }), 'env'],
    ['a NUL in an env value', request({ env: { A: 'x\0y' } }), 'env'],
    ['an empty script', request({ script: '' }), 'script'],
  ])('refuses %s', (_what, bad, path) => {
    const issues = provisionIssues(bad, limits);
    expect(issues.map((i) => i.path).join(' ')).toContain(path);
  });

  it('names the setting of a maximum', () => {
    expect(provisionIssues(request({}, { memoryMb: 20_000 }), limits)).toEqual([
      { path: 'resources.memoryMb', message: 'must be at most 2048 (HODEI_MAX_JOB_MEMORY_MB)' },
    ]);
  });
});

describe('graceSeconds', () => {
  it("keeps a job's grace within the operator's maximum", () => {
    const max = limits.HODEI_MAX_CANCEL_GRACE_SECONDS;
    expect(graceSeconds(10, limits)).toBe(10);
    expect(graceSeconds(0, limits)).toBe(0);
    expect(graceSeconds(1e9, limits)).toBe(max);
    // Docker waits forever for -1.
    expect(graceSeconds(-1, limits)).toBe(max);
    expect(graceSeconds(Number.NaN, limits)).toBe(max);
  });
});
