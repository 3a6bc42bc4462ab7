import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.js';
import { apiToken } from '../../api/auth.js';
import { loadConfig } from '../../domain/config.js';
import { LABEL_INSTANCE } from '../../domain/container-labels.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';
import { api, stack } from '../support/api-client.js';
import { ROOT, startStack } from '../support/stack.js';

/** Routes of the web page (HTML and assets for browsers), not of the JSON API. */
const WEB_PAGE = new Set(['/', '/assets/{file}']);

describe('/openapi.json', () => {
  it('describes every route the API serves, each with its error answers', async () => {
    const s = stack();
    const connection = await Connection.connect({ address: s.temporalAddress });
    const logStore = SqliteLogStore.inDataDir(s.dataDir);
    try {
      const config = loadConfig({
        HODEI_DATA_DIR: s.dataDir,
        HODEI_INSTANCE_ID: s.instanceId,
        HODEI_TASK_QUEUE: s.taskQueue,
      });
      const app = createApp({
        client: new Client({ connection }),
        logStore,
        config,
        logger: pino({ level: 'silent' }),
        tokens: [apiToken(s.apiToken)],
      });
      const served = new Set(
        app.routes
          .filter((r) => r.method !== 'ALL')
          .map((r) => `${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`)
          // An artifact's path may hold slashes: the described `{path}` is served by a wildcard.
          .map((r) => r.replace(/\/artifacts\/\*$/, '/artifacts/{path}'))
          .filter((r) => !WEB_PAGE.has(r.split(' ')[1]!)),
      );
      const doc = (await (await api('/openapi.json')).json()) as {
        openapi: string;
        paths: Record<string, Record<string, { responses: Record<string, unknown>; security?: unknown[] }>>;
      };
      expect(doc.openapi).toBe('3.1.0');
      const described = new Set(
        Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)),
      );
      expect([...served].sort()).toEqual([...described].sort());
      for (const [p, ops] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(ops)) {
          expect(op.responses, `${method} ${p}`).toHaveProperty('500');
          if (!['/healthz', '/readyz'].includes(p)) expect(op.responses, `${method} ${p}`).toHaveProperty('401');
        }
      }
    } finally {
      await connection.close();
      await logStore.close();
    }
  });

  // Property-based fuzzing from the spec: no 5xx, nothing the spec does not allow. On a stack of
  // its own, so the real containers of fuzzed jobs never take the shared stack's capacity.
  it('holds under schemathesis fuzzing with a token (bounded examples)', async () => {
    const own = await startStack({ capacity: 4 });
    try {
      const { code, output } = await schemathesis(own.info.apiUrl, own.info.apiToken);
      expect(code, output).toBe(0);
      const generated = /(\d+) generated/.exec(output);
      expect(Number(generated?.[1] ?? 0), output).toBeGreaterThan(100);
    } finally {
      await own.stop();
      const docker = new Docker();
      const left = await docker.listContainers({
        all: true,
        filters: { label: [`${LABEL_INSTANCE}=${own.info.instanceId}`] },
      });
      await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
    }
  }, 600_000);
});

function schemathesis(apiUrl: string, token: string): Promise<{ code: number | null; output: string }> {
  const args = [
    'run',
    `${apiUrl}/openapi.json`,
    '--header',
    `Authorization: Bearer ${token}`,
    '--checks',
    'not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,ignored_auth',
    // Bounded: every valid POST /jobs starts a real container.
    '--max-examples',
    process.env.HODEI_FUZZ_EXAMPLES ?? '25',
    '--phases',
    'examples,coverage,fuzzing',
    '--seed',
    '1',
    // One worker thread: CPython 3.11.7 (this machine's python3) tracks the AST constructor's
    // recursion depth per interpreter, not per thread, so hypothesis parsing lambdas' source in two
    // threads at once fails at random with "SystemError: AST constructor recursion depth mismatch".
    '--workers',
    '1',
    '--request-timeout',
    '20',
    '--no-color',
    // Nothing written to the work tree (by default it keeps found examples in .schemathesis/).
    '--generation-database',
    'none',
  ];
  return new Promise((resolve, reject) => {
    // Run from a scratch directory: whatever schemathesis keeps (.schemathesis/) stays out of the work tree.
    const child = spawn(path.join(ROOT, '.tools/schemathesis/bin/st'), args, {
      cwd: mkdtempSync(path.join(tmpdir(), 'hodei-fuzz-')),
      env: { ...process.env, SCHEMATHESIS_TELEMETRY: 'false' },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}
