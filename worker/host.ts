import { createHash } from 'node:crypto';
import type Docker from 'dockerode';

/**
 * Stable identity of a Docker host: its name plus a hash of the engine's id. It names the host's
 * task queue, so a restarted worker serves the same queue and its jobs' activities find it again.
 */
export async function dockerHostId(docker: Docker): Promise<string> {
  const info = (await docker.info()) as { ID: string; Name: string; DockerRootDir: string };
  const name = info.Name.toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .slice(0, 40);
  // Some engine versions derive the id from a machine-wide key, so two engines on one machine
  // share it: the data root tells them apart.
  const digest = createHash('sha256').update(`${info.ID}\n${info.DockerRootDir}`).digest('hex').slice(0, 8);
  return `${name}-${digest}`;
}
