import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { extract } from 'tar-stream';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  api,
  authHeaders,
  cancel,
  containersOf,
  getJob,
  logs,
  stack,
  submit,
  waitForEnd,
  waitForState,
} from '../support/api-client.js';
import { hodei } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

type Artifact = { path: string; size: number; sha256: string; mode: number };
type ArtifactList = { artifacts: Artifact[]; truncated: boolean };

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function list(id: string): Promise<ArtifactList> {
  const res = await api(`/jobs/${id}/artifacts`);
  expect(res.status).toBe(200);
  return (await res.json()) as ArtifactList;
}

/** A raw GET with the stack's token (paths the OpenAPI check cannot template, tricks). */
const raw = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${stack().apiUrl}${path}`, { headers: { ...authHeaders(), ...headers } });

const encodePath = (path: string) => path.split('/').map(encodeURIComponent).join('/');

/** Lines of the job's output that `sha256sum` printed: digest by path. */
function printedDigests(output: string): Record<string, string> {
  const digests: Record<string, string> = {};
  for (const m of output.matchAll(/^([0-9a-f]{64}) {2}(.+)$/gm)) digests[m[2]!] = m[1]!;
  return digests;
}

/** The worker process's resident memory, bytes. */
async function workerRss(): Promise<number> {
  const status = await readFile(`/proc/${stack().workerPid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

// Concurrent: the jobs run in parallel on the shared stack (the 100,000-file one takes longest).
describe.concurrent('artifacts (real Docker, real Temporal, data-dir store)', () => {
  it('brings files back byte for byte with the printed sha256, only those the globs match; usage is reported', async () => {
    const script = [
      'mkdir -p out/sub',
      'head -c 1048576 /dev/urandom > out/sub/random.bin',
      'echo "a small report" > report.txt',
      'echo "not wanted" > other.log',
      'chmod 600 report.txt',
      'sha256sum out/sub/random.bin report.txt',
      // About a second of one core, then a 64 MiB buffer held a moment.
      'python3 -c "import time\nt=time.process_time()\nwhile time.process_time()-t<1: pass\nb=bytearray(64*1024*1024)\nfor i in range(0,len(b),4096): b[i]=1\ntime.sleep(0.3)"',
    ].join('\n');
    const job = await submit({ script, artifacts: { paths: ['out/**', 'report.txt'] } });
    const done = await waitForEnd(job.id);
    expect(done.state).toBe('SUCCEEDED');
    const printed = printedDigests(await logs(job.id));
    const { artifacts, truncated } = await list(job.id);
    expect(truncated).toBe(false);
    expect(artifacts.map((a) => a.path)).toEqual(['out/sub/random.bin', 'report.txt']);
    for (const a of artifacts) expect(a.sha256).toBe(printed[a.path]);
    expect(artifacts.find((a) => a.path === 'report.txt')).toMatchObject({ size: 15, mode: 0o600 });
    expect(done.artifacts).toMatchObject({ count: 2, bytes: 1048576 + 15, truncated: false });
    expect(done.artifactsTruncated).toBe(false);

    // The bytes, as a download.
    const res = await raw(`/jobs/${job.id}/artifacts/out/sub/random.bin`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('content-length')).toBe('1048576');
    expect(res.headers.get('etag')).toBe(`"${printed['out/sub/random.bin']}"`);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="random.bin"/);
    const whole = Buffer.from(await res.arrayBuffer());
    expect(sha(whole)).toBe(printed['out/sub/random.bin']);
    // A range, and a conditional GET.
    const part = await raw(`/jobs/${job.id}/artifacts/out/sub/random.bin`, { range: 'bytes=1000-1999' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 1000-1999/1048576');
    expect(Buffer.from(await part.arrayBuffer()).equals(whole.subarray(1000, 2000))).toBe(true);
    const bad = await raw(`/jobs/${job.id}/artifacts/report.txt`, { range: 'bytes=99-' });
    expect(bad.status).toBe(416);
    const same = await raw(`/jobs/${job.id}/artifacts/report.txt`, { 'if-none-match': `"${printed['report.txt']}"` });
    expect(same.status).toBe(304);
    expect(await (await api(`/jobs/${job.id}/artifacts/report.txt`)).text()).toBe('a small report\n');

    // All of them as one tar.
    const tar = await api(`/jobs/${job.id}/artifacts.tar`);
    expect(tar.status).toBe(200);
    const entries: Record<string, string> = {};
    await new Promise<void>((resolve, reject) => {
      const x = extract();
      x.on('entry', (header, body, next) => {
        const h = createHash('sha256');
        body.on('data', (c) => h.update(c as Buffer));
        body.on('end', () => ((entries[header.name] = h.digest('hex')), next()));
      });
      x.on('finish', resolve);
      x.on('error', reject);
      Readable.fromWeb(tar.body! as never).pipe(x);
    });
    expect(entries).toEqual({
      'out/sub/random.bin': printed['out/sub/random.bin'],
      'report.txt': printed['report.txt'],
    });

    // Exact figures from the container's cgroup at the script's end; generous bounds.
    expect(done.usage!.cpuSeconds).toBeGreaterThan(0.8);
    expect(done.usage!.cpuSeconds).toBeLessThan(30);
    expect(done.usage!.maxMemoryBytes).toBeGreaterThanOrEqual(64 * 1024 * 1024);
    expect(done.usage!.maxMemoryBytes).toBeLessThan(1024 * 1024 * 1024);
    expect(await containersOf(job.id)).toEqual([]);
  });

  it('keeps a failed job’s artifacts for always and on_failure, none for on_success; a success’s for on_success', async () => {
    const failing = 'echo kept > result.txt; exit 3';
    const [always, onFailure, onSuccess, succeeded] = await Promise.all([
      submit({ script: failing, artifacts: { paths: ['*.txt'] } }),
      submit({ script: failing, artifacts: { paths: ['*.txt'], when: 'on_failure' } }),
      submit({ script: failing, artifacts: { paths: ['*.txt'], when: 'on_success' } }),
      submit({ script: 'echo kept > result.txt', artifacts: { paths: ['*.txt'], when: 'on_success' } }),
    ]);
    for (const job of [always, onFailure, onSuccess]) {
      const done = await waitForEnd(job.id);
      expect(done.state).toBe('FAILED');
      expect(done.exitCode).toBe(3);
    }
    expect((await waitForEnd(succeeded.id)).state).toBe('SUCCEEDED');
    expect((await list(always.id)).artifacts.map((a) => a.path)).toEqual(['result.txt']);
    expect((await list(onFailure.id)).artifacts.map((a) => a.path)).toEqual(['result.txt']);
    expect((await list(onSuccess.id)).artifacts).toEqual([]);
    expect((await list(succeeded.id)).artifacts.map((a) => a.path)).toEqual(['result.txt']);
    for (const job of [always, onFailure, onSuccess, succeeded]) expect(await containersOf(job.id)).toEqual([]);
  });

  it('keeps a timed-out job’s artifacts, collected after its script is stopped', async () => {
    const job = await submit({
      script: 'trap "echo stopped >> progress.txt; exit 143" TERM; echo started > progress.txt; sleep 60 & wait',
      // The deadline counts from the run's start on its host, not the script's first line: a
      // margin for a loaded machine (at 2 s the script had not started once, in a CI run).
      timeoutSeconds: 10,
      cancelGraceSeconds: 5,
      artifacts: { paths: ['progress.txt'], when: 'on_failure' },
    });
    const done = await waitForEnd(job.id);
    expect(done.state).toBe('TIMED_OUT');
    const { artifacts } = await list(job.id);
    expect(artifacts.map((a) => a.path)).toEqual(['progress.txt']);
    // Written by the script's own SIGTERM handler: collected after the stop.
    expect(await (await api(`/jobs/${job.id}/artifacts/progress.txt`)).text()).toBe('started\nstopped\n');
    expect(await containersOf(job.id)).toEqual([]);
  });

  it('keeps none of a cancelled job', async () => {
    const job = await submit({ script: 'echo x > a.txt; echo ready; sleep 60', artifacts: { paths: ['a.txt'] } });
    await waitForState(job.id, ['RUNNING']);
    // Its file is written before the cancel.
    await waitFor('the file to be written', async () => ((await logs(job.id)).includes('ready') ? true : undefined), {
      timeoutMs: 60_000,
    });
    expect((await cancel(job.id)).status).toBe(202);
    expect((await waitForEnd(job.id)).state).toBe('CANCELLED');
    expect(await list(job.id)).toEqual({ artifacts: [], truncated: false });
    expect(await containersOf(job.id)).toEqual([]);
  });

  it('serves nothing outside a job’s artifacts: links, host paths, odd names, path tricks; truncates at maxBytes', async () => {
    const script = [
      'ln -s / root',
      'ln -s /etc/passwd passwd',
      'ln -s /proc/self/environ environ',
      'mkdir -p d && ln -s /etc d/etc && ln -s ../../../../etc/shadow d/up',
      'echo real > d/real.txt',
      'ln d/real.txt d/hardlink.txt',
      "printf 'x' > \"$(printf 'new\\nline')\"",
      'printf y > "a..b"',
      // A path over 1024 bytes: five directories of 250 characters.
      'long=$(printf "%0250d" 0); p=$long/$long/$long/$long/$long; mkdir -p "$p" && echo deep > "$p/f"',
      'head -c 600 /dev/zero > big1.bin; head -c 600 /dev/zero | tr "\\0" "1" > big2.bin',
      'mkfifo fifo',
    ].join('\n');
    const job = await submit({
      script,
      secrets: { TOP_SECRET: 'hunter2-artifact-secret' },
      artifacts: { paths: ['**'], maxBytes: 1000 },
    });
    const done = await waitForEnd(job.id);
    expect(done.state).toBe('SUCCEEDED');
    expect(done.artifactsTruncated).toBe(true);
    const { artifacts, truncated } = await list(job.id);
    expect(truncated).toBe(true);
    const paths = artifacts.map((a) => a.path);
    // Regular files only; links (symbolic and hard) are never followed or served.
    for (const p of ['root', 'passwd', 'environ', 'd/etc', 'd/up', 'fifo', 'new\nline']) expect(paths).not.toContain(p);
    // A hard link (within /work: a tmpfs links nowhere else) is kept once, under the name tar met first.
    expect(paths.filter((p) => p === 'd/real.txt' || p === 'd/hardlink.txt').length).toBe(1);
    expect(paths).toContain('a..b');
    expect(paths.filter((p) => p.startsWith('big')).length).toBe(1);
    expect(paths.some((p) => p.length > 1024)).toBe(false);
    let served = '';
    for (const a of artifacts) {
      const res = await raw(`/jobs/${job.id}/artifacts/${encodePath(a.path)}`);
      expect(res.status).toBe(200);
      served += await res.text();
    }
    expect(served).not.toContain('hunter2');
    expect(served).not.toContain('root:');
    expect(await logs(job.id)).toMatch(
      /\[hodei\] artifacts truncated: 1 file\(s\) over artifacts.maxBytes \(1000 bytes\) left out: "big[12].bin"/,
    );

    // Path tricks: 4xx, never a file outside the job's artifacts.
    const tricks = [
      '..%2f..%2f..%2fetc%2fpasswd',
      '%2e%2e/%2e%2e/etc/passwd',
      'd%2freal.txt',
      'd%5creal.txt',
      '/etc/passwd',
      'd/./real.txt',
      'd//real.txt',
      'passwd',
      'root/etc/passwd',
      'd/real.txt%00',
      '%ff',
      artifacts[0]!.sha256,
    ];
    for (const trick of tricks) {
      const res = await raw(`/jobs/${job.id}/artifacts/${trick}`);
      expect([400, 404], `${trick} → ${res.status}`).toContain(res.status);
      expect(await res.text()).not.toContain('root:');
    }
    expect((await raw(`/jobs/no-such-job/artifacts/d/real.txt`)).status).toBe(404);
    expect((await api(`/jobs/no-such-job/artifacts`)).status).toBe(404);
    expect(await containersOf(job.id)).toEqual([]);
  });

  it('reports a file tar could not read as left out, and keeps the others', async () => {
    const job = await submit({
      script: 'mkdir out && echo kept > out/a.txt && echo hidden > out/b.txt && chmod 000 out/b.txt',
      artifacts: { paths: ['out/**'] },
    });
    const done = await waitForEnd(job.id);
    expect(done.state).toBe('SUCCEEDED');
    expect(done.artifactsTruncated).toBe(true);
    const { artifacts, truncated } = await list(job.id);
    expect(truncated).toBe(true);
    expect(artifacts.map((a) => a.path)).toEqual(['out/a.txt']);
    expect(await logs(job.id)).toMatch(
      /\[hodei\] artifacts truncated: tar in the container exited 2: .*out\/b\.txt.*Permission denied/,
    );
  });

  it('collects 100,000 tiny files and a file growing meanwhile with the worker’s memory bounded', async () => {
    const script = [
      'mkdir many && cd many',
      "python3 -c \"\nfor d in range(100):\n  import os; os.mkdir(str(d))\n  for f in range(1000): open(f'{d}/{f}','w').write(str(f))\" || exit 9",
      'echo "made $(find . -type f | wc -l) files"',
      'cd ..',
      // Grows while it is collected: the wrapper stops the script first, so a leftover writer is gone.
      '(while :; do echo grow >> growing.log; done) &',
      'sleep 0.5',
    ].join('\n');
    const before = await workerRss();
    let peak = before;
    const job = await submit({
      script,
      artifacts: { paths: ['many/**', 'growing.log'] },
      resources: { pidsLimit: 64 },
    });
    let ended = false;
    const sampling = (async () => {
      while (!ended) {
        peak = Math.max(peak, await workerRss());
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const done = await waitForEnd(job.id, 600_000);
    ended = true;
    await sampling;
    // The job's own words and the platform's (system lines) say what happened when this fails.
    const said = `job log:\n${(await logs(job.id)).split('\n').slice(-20).join('\n')}`;
    expect(done.state, said).toBe('SUCCEEDED');
    expect(done.artifacts, said).toMatchObject({ count: 100_001, truncated: false });
    const { artifacts } = await list(job.id);
    expect(artifacts.length).toBe(100_001);
    const growing = artifacts.find((a) => a.path === 'growing.log')!;
    const res = await raw(`/jobs/${job.id}/artifacts/growing.log`);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(growing.size);
    expect(sha(body)).toBe(growing.sha256);
    // RSS growth of the worker while it collected: printed for the report, bounded generously.
    console.log(`worker RSS: ${Math.round(before / 2 ** 20)} MiB before, ${Math.round(peak / 2 ** 20)} MiB peak`);
    expect(peak - before).toBeLessThan(400 * 1024 * 1024);
  }, 600_000);

  it('through the hodei CLI: submit --artifact collects, artifacts ls lists, get writes the bytes', async () => {
    const script = [
      'mkdir -p out/sub',
      'head -c 300000 /dev/urandom > out/sub/data.bin',
      'echo "cli report" > out/report.txt',
      'echo "not wanted" > other.log',
      'sha256sum out/sub/data.bin out/report.txt',
    ].join('\n');
    const submitted = await hodei(['submit', '--follow', '--artifact', 'out/**', '-'], { stdin: script });
    expect(submitted.code, submitted.stderr).toBe(0);
    const id = /^job (\S+)$/m.exec(submitted.stderr)![1]!;
    const printed = printedDigests(submitted.stdout);
    expect(Object.keys(printed).sort()).toEqual(['out/report.txt', 'out/sub/data.bin']);

    // ls: size, sha256, path per line, sorted by path; nothing outside the glob.
    const ls = await hodei(['artifacts', 'ls', id]);
    expect(ls.code, ls.stderr).toBe(0);
    const rows = ls.stdout
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/));
    expect(rows).toEqual([
      ['11', printed['out/report.txt'], 'out/report.txt'],
      ['300000', printed['out/sub/data.bin'], 'out/sub/data.bin'],
    ]);

    const dir = await mkdtemp(path.join(tmpdir(), 'hodei-cli-artifacts-'));
    try {
      // get of one path: exactly its bytes, at its path under -o DIR.
      const one = path.join(dir, 'one');
      const got = await hodei(['artifacts', 'get', id, 'out/sub/data.bin', '-o', one]);
      expect(got.code, got.stderr).toBe(0);
      expect(await readdir(one, { recursive: true })).toEqual(expect.arrayContaining(['out/sub/data.bin']));
      const bytes = await readFile(path.join(one, 'out/sub/data.bin'));
      expect(bytes.length).toBe(300000);
      expect(sha(bytes)).toBe(printed['out/sub/data.bin']);
      expect((await readdir(one, { recursive: true })).sort()).toEqual(['out', 'out/sub', 'out/sub/data.bin']);

      // get of all: the tree recreated, from the working directory by default.
      const all = path.join(dir, 'all');
      const gotAll = await hodei(['artifacts', 'get', id, '-o', all]);
      expect(gotAll.code, gotAll.stderr).toBe(0);
      expect((await readdir(all, { recursive: true })).sort()).toEqual([
        'out',
        'out/report.txt',
        'out/sub',
        'out/sub/data.bin',
      ]);
      expect(await readFile(path.join(all, 'out/report.txt'), 'utf8')).toBe('cli report\n');
      expect(sha(await readFile(path.join(all, 'out/sub/data.bin')))).toBe(printed['out/sub/data.bin']);

      // A path the job does not have: a non-zero exit naming it, nothing written.
      const missing = await hodei(['artifacts', 'get', id, 'out/nope.bin', '-o', path.join(dir, 'missing')]);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toContain(`job ${id} has no artifact out/nope.bin`);
      expect(await readdir(dir)).toEqual(expect.not.arrayContaining(['missing']));
      // A job that does not exist: non-zero too.
      const noJob = await hodei(['artifacts', 'ls', 'no-such-job']);
      expect(noJob.code).not.toBe(0);
      expect(noJob.stderr).toMatch(/^hodei: /);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports usage of a job without artifacts (sampled by the engine)', async () => {
    const job = await submit({
      script:
        'python3 -c "import time\nt=time.process_time()\nwhile time.process_time()-t<2: pass\nb=bytearray(64*1024*1024)\nfor i in range(0,len(b),4096): b[i]=1\ntime.sleep(2.5)"',
    });
    const done = await waitForEnd(job.id);
    expect(done.state).toBe('SUCCEEDED');
    expect(done.artifacts).toBeUndefined();
    expect(done.usage!.cpuSeconds).toBeGreaterThan(1);
    expect(done.usage!.cpuSeconds).toBeLessThan(30);
    expect(done.usage!.maxMemoryBytes).toBeGreaterThanOrEqual(64 * 1024 * 1024);
    expect((await getJob(job.id)).usage).toEqual(done.usage);
  });
});
