import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stack } from './api-client.js';
import { ROOT } from './stack.js';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the `hodei` bin (piped, so no terminal) against the shared stack, as an async child process. */
export function hodei(
  args: string[],
  options: { stdin?: string; token?: string; env?: Record<string, string>; cwd?: string } = {},
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'cli/hodei.mjs'), ...args], {
      cwd: options.cwd ?? tmpdir(),
      env: {
        PATH: process.env.PATH,
        HODEI_URL: stack().apiUrl,
        HODEI_TOKEN: options.token ?? stack().apiToken,
        ...options.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}
