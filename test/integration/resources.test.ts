import { describe, expect, it } from 'vitest';
import { api, containersOf, logs, submit, waitForEnd } from '../support/api-client.js';

describe('per-job resources and the image policy', () => {
  it('a job over its memory limit ends FAILED with reason OOMKilled', async () => {
    const job = await submit({
      script: '#!/usr/bin/env python3\nx = bytearray(256 * 1024 * 1024)\nprint("survived")\n',
      resources: { memoryMb: 64 },
    });
    const done = await waitForEnd(job.id);
    expect(done).toMatchObject({ state: 'FAILED', reason: 'OOMKilled' });
    expect(await logs(job.id)).not.toContain('survived');
    expect(await containersOf(job.id)).toEqual([]);
  });

  it('a fork bomb is contained by the pids limit while another job runs unaffected', async () => {
    const bomb = await submit({
      script: [
        '#!/usr/bin/env python3',
        'import os, time',
        'n = 0',
        'try:',
        '    while n < 1000:',
        '        if os.fork() == 0:',
        '            time.sleep(30)',
        '            os._exit(0)',
        '        n += 1',
        'except OSError as e:',
        '    print("fork refused after", n, flush=True)',
      ].join('\n'),
      resources: { pidsLimit: 32 },
    });
    const neighbour = await submit({ script: 'echo neighbour fine' });
    const [bombDone, neighbourDone] = await Promise.all([waitForEnd(bomb.id), waitForEnd(neighbour.id)]);
    expect(bombDone.state).toBe('SUCCEEDED');
    const forked = Number(/fork refused after (\d+)/.exec(await logs(bomb.id))?.[1]);
    expect(forked).toBeGreaterThan(0);
    expect(forked).toBeLessThan(32);
    expect(neighbourDone.state).toBe('SUCCEEDED');
    expect(await logs(neighbour.id)).toBe('neighbour fine\n');
    expect(await containersOf(bomb.id)).toEqual([]);
  });

  it('a job filling its scratch space fails alone, and cannot write elsewhere', async () => {
    const job = await submit({
      script:
        'pwd\ntouch /etc/x 2>/dev/null || echo "no write access outside scratch"\ndd if=/dev/zero of=fill bs=1M count=64 2>&1 | head -1\nexit 7',
      resources: { scratchMb: 16 },
    });
    const done = await waitForEnd(job.id);
    expect(done).toMatchObject({ state: 'FAILED', exitCode: 7 });
    const output = await logs(job.id);
    expect(output).toContain('/work\n');
    expect(output).toContain('no write access outside scratch');
    expect(output).toMatch(/No space left on device/);
  });

  it('a non-zero exit is run again when the job allows retries, each attempt in a fresh container', async () => {
    const job = await submit({ script: 'echo "try in $(hostname)"; exit 3', retries: 1 });
    const done = await waitForEnd(job.id);
    expect(done).toMatchObject({ state: 'FAILED', exitCode: 3, attempt: 2 });
    const lines = (await logs(job.id)).trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[1]).toBe('[hodei] attempt 2 started');
    expect(lines[0]).toMatch(/^try in /);
    expect(lines[2]).toMatch(/^try in /);
    expect(lines[0]).not.toBe(lines[2]);
  });

  it('an image outside the allowlist is refused at submit', async () => {
    const res = await api('/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ script: 'true', image: 'busybox:latest' }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { issues: [{ path: 'image' }] } });
  });

  it('resources over the operator maxima are refused at submit', async () => {
    const res = await api('/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ script: 'true', resources: { memoryMb: 1_000_000 } }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { issues: [{ path: 'resources.memoryMb' }] } });
  });

  it('an allowed image that is missing fails fast with a clear reason', async () => {
    const job = await submit({ script: 'true', image: 'hodei-test-missing:1' });
    const done = await waitForEnd(job.id, 30_000);
    expect(done.state).toBe('FAILED');
    expect(done.reason).toContain('hodei-test-missing:1 is not present');
  });
});
