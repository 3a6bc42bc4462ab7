import { pack } from 'tar-stream';
import { buffer } from 'node:stream/consumers';
import { SCRIPT_DIR, SCRIPT_PATH } from '../domain/names.js';

/**
 * A tar archive holding the job's script at SCRIPT_PATH, owned by root and readable and
 * executable by the unprivileged user the script runs as, ready for Docker's putArchive.
 */
export async function scriptArchive(script: string): Promise<Buffer> {
  const archive = pack();
  const mtime = new Date();
  archive.entry({ name: SCRIPT_DIR.slice(1), type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime });
  archive.entry({ name: SCRIPT_PATH.slice(1), mode: 0o555, uid: 0, gid: 0, mtime }, script);
  archive.finalize();
  // Scripts are at most 1 MiB (the API's body limit): one buffer keeps the upload simple.
  return buffer(archive);
}

/** The container command: the script itself when it names its interpreter (`#!`), else bash. */
export function scriptCommand(script: string): string[] {
  return script.startsWith('#!') ? [SCRIPT_PATH] : ['/bin/bash', SCRIPT_PATH];
}
