import path from 'node:path';
import { pack } from 'tar-stream';
import { buffer } from 'node:stream/consumers';
import { SCRIPT_DIR, SCRIPT_PATH } from '../domain/container-labels.js';

/**
 * A tar archive holding the job's script, owned by root and readable and executable by the
 * unprivileged user the script runs as, for Docker's putArchive into SCRIPT_DIR (the container's
 * read-only root takes nothing: SCRIPT_DIR is a volume, see `jobContainerSpec`).
 */
export async function scriptArchive(script: string): Promise<Buffer> {
  const archive = pack();
  archive.entry(
    { name: path.posix.relative(SCRIPT_DIR, SCRIPT_PATH), mode: 0o555, uid: 0, gid: 0, mtime: new Date() },
    script,
  );
  archive.finalize();
  // Scripts are at most 1 MiB (the API's body limit): one buffer keeps the upload simple.
  return buffer(archive);
}

/** The container command: the script itself when it names its interpreter (`#!`), else bash. */
export function scriptCommand(script: string): string[] {
  return script.startsWith('#!') ? [SCRIPT_PATH] : ['/bin/bash', SCRIPT_PATH];
}
