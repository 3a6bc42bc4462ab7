import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/stack.js';

const run = promisify(execFile);

/** What a process logging one line with `createLogger(..., format)` prints on stdout (a pipe here). */
async function logOneLine(format: string): Promise<string> {
  const code = `import { createLogger } from './domain/logger.ts'; createLogger('api', 'info', ${JSON.stringify(format)}).info({ jobs: 3 }, 'hello there');`;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT });
  return stdout;
}

describe('createLogger', () => {
  it('prints JSON when piped (auto) or asked (json)', async () => {
    for (const format of ['auto', 'json']) {
      const record = JSON.parse(await logOneLine(format)) as Record<string, unknown>;
      expect(record).toMatchObject({ name: 'hodei-api', msg: 'hello there', jobs: 3, level: 30 });
    }
  });

  it('prints one readable line when asked (pretty)', async () => {
    const out = await logOneLine('pretty');
    expect(out).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(hodei-api\): hello there \{"jobs":3\}\n$/);
  });
});
