/** Name of the host-specific task queue for a Docker engine, stable across worker restarts. */
export function hostTaskQueue(baseQueue: string, hostId: string): string {
  return `${baseQueue}@${hostId}`;
}
