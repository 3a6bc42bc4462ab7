import type { Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { isNotFound } from '../activities/container-ops.js';
import { claimedJob } from '../activities/warm-pool.js';
import { LABEL_ATTEMPT, LABEL_INSTANCE, LABEL_JOB_ID, LABEL_MANAGED, LABEL_POOL } from '../domain/container-labels.js';

// An unreachable Temporal must not stall a sweep for long.
const DESCRIBE_DEADLINE_MS = 5_000;

export interface ReaperOptions {
  docker: Docker;
  client: Client;
  instanceId: string;
  /**
   * Containers younger than this are left alone while Temporal does not know their workflow (or
   * they carry no job id): they may be in the middle of provisioning. A closed workflow needs no
   * such wait: its container goes at the first sweep that sees it.
   */
  graceMs: number;
  logger: Logger;
  /** This worker's warm pool owner (warm-pool.ts): its idle containers are kept, other workers' go after the grace. */
  poolOwner?: string;
  /** Called with the number of containers each sweep removed. */
  onRemoved?: (count: number) => void;
}

export interface SweepResult {
  removed: string[];
  /** False when Temporal could not be asked: then nothing was removed. */
  complete: boolean;
}

/** What a sweep makes of one container: remove it now, keep it, or keep it until it is older than the grace. */
type Verdict = 'orphan' | 'keep' | 'orphan-after-grace';

/**
 * Removes this installation's job containers whose workflow is closed (at once), or that
 * Temporal positively reports as not found (once older than the grace) — the containers of
 * terminated workflows, of cleanups that could not reach Docker, of crashed provisioning. When
 * Temporal cannot be reached it removes nothing: an unknown answer is never taken for "gone".
 * Costs one container list and one describe per managed container on the host.
 */
export async function sweepOrphans(options: ReaperOptions): Promise<SweepResult> {
  const { docker, client, instanceId, graceMs, logger } = options;
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`${LABEL_MANAGED}=true`, `${LABEL_INSTANCE}=${instanceId}`] },
  });
  const removed: string[] = [];
  for (const container of containers) {
    // Warm pool hook: a claimed pool container names its job (it carries no job id label).
    const claimed = container.Labels[LABEL_POOL] ? claimedJob(container.Names[0] ?? '') : undefined;
    const jobId = container.Labels[LABEL_JOB_ID] ?? claimed?.jobId;
    let verdict: Verdict;
    if (container.Labels[LABEL_POOL] && !claimed) {
      // Idle: this worker's pool keeps it; another's (a worker that died) goes once past the grace.
      verdict = container.Labels[LABEL_POOL] === options.poolOwner ? 'keep' : 'orphan-after-grace';
    } else if (!jobId) {
      verdict = 'orphan-after-grace';
    } else {
      try {
        const description = await client.connection.withDeadline(Date.now() + DESCRIBE_DEADLINE_MS, () =>
          client.workflow.getHandle(jobId).describe(),
        );
        const currentAttempt = (description.memo as { attempt?: number } | undefined)?.attempt ?? 1;
        const containerAttempt = Number(container.Labels[LABEL_ATTEMPT] ?? claimed?.attempt ?? 1);
        // Closed, or still running but on a later attempt (this container's host was lost): no
        // one will use this container again, however young it is.
        verdict = description.status.name !== 'RUNNING' || containerAttempt < currentAttempt ? 'orphan' : 'keep';
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) {
          logger.warn({ err }, 'reaper: Temporal unreachable, removing nothing this sweep');
          return { removed, complete: false };
        }
        verdict = 'orphan-after-grace';
      }
    }
    if (verdict === 'keep') continue;
    if (verdict === 'orphan-after-grace' && Date.now() - container.Created * 1000 < graceMs) continue;
    try {
      await docker.getContainer(container.Id).remove({ force: true, v: true });
      removed.push(container.Id);
      logger.info({ jobId, containerId: container.Id }, 'reaper: removed orphaned container');
    } catch (err) {
      if (!isNotFound(err))
        logger.warn({ err, jobId, containerId: container.Id }, 'reaper: could not remove container');
    }
  }
  options.onRemoved?.(removed.length);
  await removeUnusedVolumes(docker, instanceId, logger);
  return { removed, complete: true };
}

/**
 * Removes this installation's script volumes that no container uses any more: a job container
 * removed behind the platform's back without `-v` leaves its (small) volume behind. A volume is
 * created with its container, so one in use is never dangling; a removal that races a use fails
 * and is left for the next sweep.
 */
async function removeUnusedVolumes(docker: Docker, instanceId: string, logger: Logger): Promise<void> {
  const { Volumes } = await docker.listVolumes({
    filters: { label: [`${LABEL_MANAGED}=true`, `${LABEL_INSTANCE}=${instanceId}`], dangling: ['true'] },
  });
  for (const volume of Volumes ?? []) {
    try {
      await docker.getVolume(volume.Name).remove();
      logger.info({ volume: volume.Name }, 'reaper: removed unused script volume');
    } catch (err) {
      if (!isNotFound(err)) logger.warn({ err, volume: volume.Name }, 'reaper: could not remove volume');
    }
  }
}

/** Sweeps at start and then every `intervalMs` (never two sweeps at once); returns a stop function. */
export function startReaper(options: ReaperOptions & { intervalMs: number }): () => Promise<void> {
  let current: Promise<unknown> | undefined;
  const sweep = () => {
    if (current) return;
    current = sweepOrphans(options)
      .catch((err: unknown) => options.logger.warn({ err }, 'reaper: sweep failed'))
      .finally(() => (current = undefined));
  };
  sweep();
  const timer = setInterval(sweep, options.intervalMs);
  return async () => {
    clearInterval(timer);
    await current;
  };
}
