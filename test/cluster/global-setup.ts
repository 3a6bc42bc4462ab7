import { randomUUID } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { createLogger } from '../../domain/logger.js';
import { startCluster, type ClusterInfo } from '../../scripts/cluster/cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    cluster: ClusterInfo;
  }
}

/**
 * One cluster (scripts/cluster/cluster.ts: PostgreSQL, the four Temporal services, two hosts of
 * capacity 4 in network namespaces, two API replicas) for the `cluster` project, on ports of its
 * own, with an instance id of its own; removed with all its data when the run ends.
 */
export default async function setup(project: TestProject) {
  const logger = createLogger('cluster', 'warn', 'json');
  const cluster = await startCluster({
    instanceId: `test-cluster-${randomUUID().slice(0, 8)}`,
    apiPort: 0,
    env: {
      HODEI_WORKER_CAPACITY: '4',
      // A cut-off host's jobs go elsewhere after 30 s (a killed worker, started again, takes up
      // its jobs well within it on a loaded machine); the reaper looks every 2 s.
      HODEI_HOST_LOSS_SECONDS: '30',
      HODEI_REAPER_INTERVAL_SECONDS: '2',
      HODEI_CODEC_PORT: 'off',
      HODEI_LOG_FORMAT: 'json',
      HODEI_LOG_LEVEL: 'info',
    },
    output: 'files',
    ephemeral: true,
    logger,
  });
  project.provide('cluster', cluster.info);
  return () => cluster.stop();
}
