/** Name of the host-specific task queue for a Docker engine, stable across worker restarts. */
export function hostTaskQueue(baseQueue: string, hostId: string): string {
  return `${baseQueue}@${hostId}`;
}

/**
 * The control queue: light activities that talk to Temporal only (concurrency permits). Served by
 * every worker with fixed slots, so they never wait for, or take, a container slot.
 */
export function controlTaskQueue(baseQueue: string): string {
  return `${baseQueue}.control`;
}
