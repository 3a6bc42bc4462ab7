import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The trimmed content of `<dataDir>/<name>`, created from `make()` (mode 0600) when missing. Safe
 * when the API and the worker start at once: the first to create it wins, the other reads it.
 */
export function readOrCreateDataFile(dataDir: string, name: string, make: () => string): string {
  const file = path.join(dataDir, name);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const value = make();
    try {
      writeFileSync(file, `${value}\n`, { flag: 'wx', mode: 0o600 });
      return value;
    } catch {
      return readFileSync(file, 'utf8').trim();
    }
  }
}
