import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { listen, writePortsFile } from '../../domain/listen.js';
import { serveMetrics } from '../../worker/metrics.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(path.join(tmpdir(), 'hodei-listen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('servers on port 0 and their ports file', () => {
  it('binds port 0 and reports the port the system picked', async () => {
    const { server, port } = await serveMetrics(new Registry(), {
      port: 0,
      host: '127.0.0.1',
      logger: pino({ level: 'silent' }),
    });
    try {
      expect(port).toBe((server.address() as AddressInfo).port);
      expect(port).toBeGreaterThan(0);
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
    } finally {
      server.close();
    }
  });

  it('writes the ports file whole, with no temporary file left', async () => {
    const file = path.join(dir, 'api.ports.json');
    await writePortsFile(file, { api: 1234, codec: 2345 });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ api: 1234, codec: 2345 });
    expect(readdirSync(dir)).toEqual(['api.ports.json']);
    await writePortsFile(undefined, { api: 1 });
    expect(readdirSync(dir)).toEqual(['api.ports.json']);
  });

  it('ends the process on a port in use with one line naming the setting', async () => {
    const holder = createServer();
    const port = await listen(holder, 0, '127.0.0.1');
    try {
      const script = [
        "import { createServer } from 'node:net';",
        "import { pino } from 'pino';",
        "import { listenOrExit } from './domain/listen.ts';",
        `await listenOrExit(createServer(), { port: ${port}, host: '127.0.0.1', setting: 'HODEI_API_PORT', logger: pino() });`,
        "console.log('still running');",
      ].join('\n');
      const run = promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: ROOT,
      });
      const failed = (await run.then(
        () => undefined,
        (err: unknown) => err,
      )) as { code: number; stdout: string } | undefined;
      expect(failed?.code).toBe(1);
      const line = JSON.parse(failed!.stdout.trim()) as Record<string, unknown>;
      expect(line).toMatchObject({ level: 60, code: 'EADDRINUSE', port, setting: 'HODEI_API_PORT' });
      expect(line.msg).toBe(`127.0.0.1:${port} is in use: set HODEI_API_PORT to another port`);
    } finally {
      holder.close();
    }
  });
});
