import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientFor } from '../support/api-client.js';
import { startStack, type RunningStack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/** A stack of this file's own, whose worker it kills in the middle of a collection. */
let stack: RunningStack;
beforeAll(async () => {
  stack = await startStack();
}, 180_000);
afterAll(() => stack?.stop(), 60_000);

const { submit, logs, waitForEnd } = clientFor(() => stack.info);

describe('a worker killed (-9) while it collects artifacts', () => {
  it('the retried collection completes them, with no duplicates', async () => {
    const script = [
      'mkdir out',
      'for i in 1 2 3 4 5 6; do head -c 40000000 /dev/urandom > out/f$i.bin; done',
      'sha256sum out/*.bin',
    ].join('\n');
    const job = await submit({ script, artifacts: { paths: ['out/*.bin'] } });
    // The job's directory in the data-dir store: blobs appear one by one as they are collected.
    const jobDir = path.join(stack.info.dataDir, 'artifacts', Buffer.from(job.id).toString('base64url'));
    const files = (dir: string) => readdir(path.join(jobDir, dir)).catch(() => [] as string[]);
    await waitFor(
      'the collection to be under way',
      async () => ((await files('blobs')).length >= 1 || (await files('tmp')).length >= 1 ? true : undefined),
      { timeoutMs: 120_000, intervalMs: 10 },
    );
    await stack.stopWorker('SIGKILL');
    // Killed mid-way: the manifest, written last, is not there yet.
    expect(await files('.')).not.toContain('manifest.json');
    await stack.startWorker();
    const done = await waitForEnd(job.id, 180_000);
    expect(done.state).toBe('SUCCEEDED');
    expect(done.artifacts).toMatchObject({ count: 6, truncated: false });

    const printed = Object.fromEntries(
      [...(await logs(job.id)).matchAll(/^([0-9a-f]{64}) {2}(.+)$/gm)].map((m) => [m[2]!, m[1]!]),
    );
    const res = await fetch(`${stack.info.apiUrl}/jobs/${job.id}/artifacts`, {
      headers: { authorization: `Bearer ${stack.info.apiToken}` },
    });
    const { artifacts } = (await res.json()) as { artifacts: { path: string; sha256: string; size: number }[] };
    expect(artifacts.map((a) => a.path)).toEqual([1, 2, 3, 4, 5, 6].map((i) => `out/f${i}.bin`));
    for (const a of artifacts) expect(a).toMatchObject({ sha256: printed[a.path], size: 40_000_000 });
    // Content-addressed: exactly one blob per file, whatever the first try left.
    expect((await files('blobs')).sort()).toEqual(artifacts.map((a) => a.sha256).sort());
  });
});
