import { describe, expect, it } from 'vitest';
import { defaultJobName, JobSpecSchema } from '../../domain/job-spec.js';

describe('JobSpecSchema', () => {
  it('applies defaults', () => {
    expect(JobSpecSchema.parse({ script: 'echo' })).toEqual({
      script: 'echo',
      env: {},
      secrets: {},
      labels: {},
      timeoutSeconds: 3600,
      cancelGraceSeconds: 10,
      resources: {},
      retries: 0,
    });
  });

  it.each([
    [{ script: 'x', env: { 'A-B': 'x' } }, 'env'],
    [{ script: 'x', env: { A: 'nul\0' } }, 'env'],
    [{ script: 'x', secrets: { 'A-B': 'x' } }, 'secrets'],
    [{ script: 'x', secrets: { A: 1 } }, 'secrets'],
    [{ script: 'x', cancelGraceSeconds: 1.5 }, 'cancelGraceSeconds'],
    [{ script: 'x', labels: { '-bad': 'x' } }, 'labels'],
    [{ script: 'x', image: 'UPPER' }, 'image'],
    [{ script: 'x', extra: true }, ''],
    [{ script: 'x', concurrency: { key: '', limit: 1 } }, 'concurrency.key'],
    [{ script: 'x', concurrency: { key: 'a b', limit: 1 } }, 'concurrency.key'],
    [{ script: 'x', concurrency: { key: 'k'.repeat(129), limit: 1 } }, 'concurrency.key'],
    [{ script: 'x', concurrency: { key: 'k', limit: 0 } }, 'concurrency.limit'],
    [{ script: 'x', concurrency: { key: 'k', limit: 1001 } }, 'concurrency.limit'],
    [{ script: 'x', concurrency: { key: 'k' } }, 'concurrency.limit'],
  ])('refuses %j', (spec, field) => {
    const result = JobSpecSchema.safeParse(spec);
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.path.join('.')).toContain(field);
  });

  it('accepts concurrency keys of [A-Za-z0-9_.:/-] with a limit from 1 to 1000', () => {
    for (const concurrency of [
      { key: 'deploy-prod', limit: 1 },
      { key: 'team/app:env.v2_x', limit: 1000 },
      { key: 'k'.repeat(128), limit: 3 },
    ]) {
      expect(JobSpecSchema.parse({ script: 'x', concurrency }).concurrency, concurrency.key).toEqual(concurrency);
    }
  });

  it('accepts image references with registry, tag and digest', () => {
    for (const image of ['busybox', 'hodei-worker:latest', 'registry.local:5000/team/app:1.2', 'a/b@sha256:abc123']) {
      expect(JobSpecSchema.safeParse({ script: 'x', image }).success, image).toBe(true);
    }
  });
});

describe('defaultJobName', () => {
  it('uses the first command line, skipping comments and the shebang', () => {
    expect(defaultJobName('#!/bin/bash\n# comment\n\n  make test  \nmore')).toBe('make test');
    expect(defaultJobName('x'.repeat(100))).toHaveLength(60);
  });
});
