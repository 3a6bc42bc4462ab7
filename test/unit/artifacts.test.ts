import { describe, expect, it } from 'vitest';
import { parseRange, requestedArtifactPath } from '../../api/artifacts.js';
import { parseScriptEnd } from '../../activities/script-hold.js';
import { artifactMatcher, safeArtifactPath } from '../../domain/artifacts.js';
import { loadConfig } from '../../domain/config.js';
import { JobSpecSchema } from '../../domain/job-spec.js';
import { resolveJobInput } from '../../domain/resolve-job.js';

describe('artifacts in the job spec', () => {
  it('defaults `when` to always and resolves maxBytes from HODEI_ARTIFACT_MAX_BYTES', () => {
    const spec = JobSpecSchema.parse({ script: 'x', artifacts: { paths: ['out/**'] } });
    expect(spec.artifacts).toEqual({ paths: ['out/**'], when: 'always' });
    const config = loadConfig({ HODEI_INSTANCE_ID: 'unit', HODEI_ARTIFACT_MAX_BYTES: '5000' });
    const resolved = resolveJobInput(spec, config);
    expect('input' in resolved && resolved.input.artifacts).toEqual({
      paths: ['out/**'],
      when: 'always',
      maxBytes: 5000,
    });
    const over = resolveJobInput({ ...spec, artifacts: { ...spec.artifacts!, maxBytes: 5001 } }, config);
    expect('issues' in over && over.issues[0]!.path).toBe('artifacts.maxBytes');
    // A job without artifacts resolves as before: no `artifacts` key at all.
    const plain = resolveJobInput(JobSpecSchema.parse({ script: 'x' }), config);
    expect('input' in plain && 'artifacts' in plain.input).toBe(false);
  });

  it.each([
    [{ paths: ['/etc/passwd'] }, 'artifacts.paths.0'],
    [{ paths: ['../x'] }, 'artifacts.paths.0'],
    [{ paths: ['ok', 'a/../../b'] }, 'artifacts.paths.1'],
    [{ paths: [''] }, 'artifacts.paths.0'],
    [{ paths: [] }, 'artifacts.paths'],
    [{ paths: Array.from({ length: 101 }, (_, i) => `f${i}`) }, 'artifacts.paths'],
    [{ paths: ['x'], when: 'sometimes' }, 'artifacts.when'],
    [{ paths: ['x'], maxBytes: 0 }, 'artifacts.maxBytes'],
    [{ paths: ['x'], extra: 1 }, 'artifacts'],
  ])('refuses %j naming the field', (artifacts, field) => {
    const result = JobSpecSchema.safeParse({ script: 'x', artifacts });
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.path.join('.')).toBe(field);
  });
});

describe('artifact paths', () => {
  it('matches globs relative to the working directory, dot files too', () => {
    const match = artifactMatcher(['out/**', 'report.xml', 'dist/*.tar.gz']);
    expect(['out/a', 'out/b/c.txt', 'out/.hidden', 'report.xml', 'dist/x.tar.gz'].every(match)).toBe(true);
    expect(['outx', 'sub/report.xml', 'dist/a/x.tar.gz', 'dist/x.tgz'].some(match)).toBe(false);
  });

  it('keeps only safe relative names', () => {
    for (const ok of ['a', 'a/b.txt', 'a..b', '.hidden', 'ünïcode/ß']) expect(safeArtifactPath(ok)).toBe(true);
    for (const bad of [
      '',
      '/a',
      'a/',
      '..',
      'a/../b',
      './a',
      'a//b',
      'new\nline',
      'nul\0',
      'back\\slash',
      'x'.repeat(1025),
    ])
      expect(safeArtifactPath(bad)).toBe(false);
  });

  it('reads the artifact path of a request, refusing encoded slashes and bad encodings', () => {
    expect(requestedArtifactPath('/jobs/j/artifacts/out/a%20b.txt')).toBe('out/a b.txt');
    expect(requestedArtifactPath('/jobs/j/artifacts/%C3%BC')).toBe('ü');
    for (const bad of ['..%2fx', 'a%2Fb', 'a%5cb', '%2e%2e/x', 'a/%00', '%ff', '', 'a//b'])
      expect(requestedArtifactPath(`/jobs/j/artifacts/${bad}`)).toBeUndefined();
  });

  it('parses single byte ranges', () => {
    expect(parseRange(undefined, 10)).toBeUndefined();
    expect(parseRange('bytes=0-4', 10)).toEqual({ start: 0, end: 4 });
    expect(parseRange('bytes=5-', 10)).toEqual({ start: 5, end: 9 });
    expect(parseRange('bytes=-3', 10)).toEqual({ start: 7, end: 9 });
    expect(parseRange('bytes=8-100', 10)).toEqual({ start: 8, end: 9 });
    for (const bad of ['bytes=10-', 'bytes=5-2', 'bytes=-0', 'bytes=-', 'items=0-1', 'bytes=0-1,3-4'])
      expect(parseRange(bad, 10)).toBe('bad');
  });

  it("parses the hold wrapper's end marker", () => {
    expect(parseScriptEnd('3 1500000000 67108864\n')).toEqual({
      exitCode: 3,
      cpuNanos: 1.5e9,
      maxMemoryBytes: 67108864,
    });
    expect(parseScriptEnd('0  \n')).toEqual({ exitCode: 0, cpuNanos: undefined, maxMemoryBytes: undefined });
    expect(parseScriptEnd('')).toBeUndefined();
    expect(parseScriptEnd('0 12')).toBeUndefined();
  });
});
