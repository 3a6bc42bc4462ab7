import { ApplicationFailure, Context, log } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { JobResources } from '../domain/job-spec.js';
import type { ProvisionedContainer, ProvisionProgress, ScriptOutcome } from '../domain/job-result.js';
import {
  FAILURE_IMAGE_NOT_FOUND,
  LABEL_ATTEMPT,
  FAILURE_PROVISIONING_FAILED,
  LABEL_INSTANCE,
  LABEL_JOB_ID,
  LABEL_MANAGED,
  LABEL_SECRET_NAMES,
} from '../domain/names.js';
import type { LogStore } from '../log-store/log-store.js';
import { isConflict, isContainerLost, isNotFound } from './docker-errors.js';
import { ContainerEvents } from './engine-outage.js';
import { failingClearly } from './log-store-failure.js';
import type { HostSlots } from './host-slots.js';
import { runScriptInContainer } from './run-script.js';
import { scriptArchive, scriptCommand } from './script-archive.js';

/** The Docker host a worker process is bound to. */
export interface HostBinding {
  docker: Docker;
  /** Stable identity of the host (from the engine's id). */
  id: string;
  /** Task queue that only this host's worker serves. */
  taskQueue: string;
  slots: HostSlots;
}

export interface ActivityDeps {
  host: HostBinding;
  logStore: LogStore;
  instanceId: string;
  /** How often the run activity heartbeats, ms. The worker throttles what reaches the server. */
  heartbeatIntervalMs?: number;
  /** Most bytes of output stored per job (`HODEI_LOG_MAX_BYTES`). Default: 100 MiB. */
  logMaxBytes?: number;
  /** How long provisioning keeps retrying engine errors before the job fails, ms. */
  provisionDeadlineMs: number;
}

export interface ProvisionInput {
  jobId: string;
  /** Which attempt of the job this container is for; each attempt gets a fresh container. */
  attempt: number;
  image: string;
  script: string;
  env: Record<string, string>;
  /** Secret env vars (absent for jobs from before secrets); their names go on a label for masking. */
  secrets?: Record<string, string>;
  resources: JobResources;
}

export interface RunScriptInput {
  jobId: string;
  containerId: string;
  cancelGraceSeconds: number;
  attempt: number;
  /** Remove the container once the script has ended on its own (see runScript). */
  removeWhenDone?: boolean;
}

export interface RemoveContainerInput {
  containerId: string;
}

// Unprivileged uid/gid the script runs as (the worker image's `hodei` user).
const JOB_UID = 10001;
const JOB_USER = `${JOB_UID}:${JOB_UID}`;
/** The job's working directory (and HOME): scratch space. */
const WORK_DIR = '/work';

function scratchMounts(scratchMb: number): Record<string, string> {
  const opts = 'rw,nosuid,nodev';
  return {
    [WORK_DIR]: `${opts},size=${scratchMb}m,uid=${JOB_UID},gid=${JOB_UID},mode=0755`,
    '/tmp': `${opts},size=${scratchMb}m,mode=1777`,
    '/var/tmp': `${opts},size=64m,mode=1777`,
    '/run/lock': `${opts},size=1m,mode=1777`,
  };
}

/** Env every job gets unless it sets the variable itself. */
const DEFAULT_ENV: Record<string, string> = {
  // Unbuffered output so lines stream as printed, not when a buffer fills.
  PYTHONUNBUFFERED: '1',
};

export function createActivities(deps: ActivityDeps) {
  const { host, instanceId } = deps;
  // A write the store's disk refuses fails the job, saying so (never retried against the same disk).
  const logStore = failingClearly(deps.logStore);
  const { docker } = host;

  return {
    /**
     * Creates the job's container (not started) with the script inside. The provisioning worker
     * only takes this task once it holds a container slot on this host (see
     * `containerSlotSupplier`), so a queued job never waits here. Idempotent: a retry finds the
     * container an earlier attempt created.
     */
    async provisionContainer(input: ProvisionInput): Promise<ProvisionedContainer> {
      const ctx = Context.current();
      const prior = ctx.info.heartbeatDetails as ProvisionProgress | undefined;
      let created: Docker.Container | undefined;
      try {
        // No heartbeat on the way: each one the server records is a write to the job's state, and
        // creating a container takes well under the heartbeat timeout. A failed attempt heartbeats
        // (below) to carry when failures began across retries.
        created = await createJobContainer(docker, instanceId, input);
        await created.putArchive(await scriptArchive(input.script), { path: '/' });
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
        log.info('container provisioned', { jobId: input.jobId, containerId: created.id, host: host.id });
        return { containerId: created.id, host: host.id, hostTaskQueue: host.taskQueue };
      } catch (err) {
        if (created) await removeQuietly(created);
        if (err instanceof ApplicationFailure || ctx.cancellationSignal.aborted) throw err;
        // The engine failed (unreachable, overloaded…): Temporal retries with backoff, until the
        // provisioning deadline, counted from the first failure, passes.
        const firstFailureAt = prior?.firstFailureAt ?? Date.now();
        ctx.heartbeat({ phase: 'retrying', firstFailureAt } satisfies ProvisionProgress);
        if (Date.now() - firstFailureAt >= deps.provisionDeadlineMs) {
          throw ApplicationFailure.create({
            type: FAILURE_PROVISIONING_FAILED,
            message: `could not provision a container for ${Math.round(deps.provisionDeadlineMs / 1000)}s: ${(err as Error).message}`,
            nonRetryable: true,
          });
        }
        throw err;
      }
    },

    /**
     * Starts the container (or reattaches to it after a worker restart), stores its output line by
     * line while heartbeating, and returns how it ended. On cancellation it stops the container
     * (SIGTERM, SIGKILL after the grace period) and waits for it before rethrowing.
     *
     * With `removeWhenDone`, a script that ended on its own has its exit recorded in the log store
     * and its container removed here, saving the workflow a cleanup activity (`removed` says so).
     * A retry that finds the container gone after such a removal (its worker died before reporting)
     * answers with the recorded exit; without one the container was lost.
     */
    async runScript(input: RunScriptInput): Promise<ScriptOutcome> {
      const container = docker.getContainer(input.containerId);
      // Listening before the container can end: an exit its engine caused is not the script's.
      const engineEvents = ContainerEvents.of(docker, instanceId);
      let outcome: ScriptOutcome;
      try {
        outcome = await runScriptInContainer(Context.current(), {
          container,
          modem: docker.modem,
          logStore,
          jobId: input.jobId,
          attempt: input.attempt,
          cancelGraceSeconds: input.cancelGraceSeconds,
          heartbeatIntervalMs: deps.heartbeatIntervalMs ?? 100,
          logMaxBytes: deps.logMaxBytes ?? 100 * 1024 * 1024,
        });
        await engineEvents.checkExit(container, outcome.exitCode);
      } catch (err) {
        const recorded = isContainerLost(err) ? await logStore.recordedExit(input.jobId, input.attempt) : undefined;
        if (recorded) return { ...recorded, removed: true };
        throw err;
      } finally {
        // The container has (almost always) stopped: an exited container holds no slot, so the
        // next queued job may go now, before this one's cleanup.
        host.slots.notify();
      }
      if (!input.removeWhenDone) return outcome;
      await logStore.recordExit(input.jobId, input.attempt, outcome);
      try {
        await removeJobContainer(container);
      } catch (err) {
        // The workflow's cleanup activity tries again, with its deadline.
        log.warn('could not remove container after its script ended', { containerId: container.id, error: String(err) });
        return outcome;
      }
      return { ...outcome, removed: true };
    },

    /** Removes the job's container whatever state it is in; a container already gone is fine. */
    async removeContainer(input: RemoveContainerInput): Promise<void> {
      try {
        await removeJobContainer(docker.getContainer(input.containerId));
      } finally {
        host.slots.notify();
      }
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;

function imageNotFound(image: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FAILURE_IMAGE_NOT_FOUND,
    message: `image ${image} is not present on this host`,
    nonRetryable: true,
  });
}

async function createJobContainer(docker: Docker, instanceId: string, input: ProvisionInput): Promise<Docker.Container> {
  const name = `hodei-${input.jobId}-${input.attempt}`;
  const secrets = input.secrets ?? {};
  const env = { ...DEFAULT_ENV, HOME: WORK_DIR, ...input.env, ...secrets };
  try {
    return await docker.createContainer({
      name,
      Image: input.image,
      Cmd: scriptCommand(input.script),
      Env: [
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        // docker-init (tini) forwards signals to the script's whole process group.
        'TINI_KILL_PROCESS_GROUP=1',
      ],
      User: JOB_USER,
      // The scratch space: the working directory and temp dirs live in size-limited tmpfs, so a
      // job that fills its disk fails alone (the user cannot write anywhere else).
      WorkingDir: WORK_DIR,
      Labels: {
        [LABEL_MANAGED]: 'true',
        [LABEL_JOB_ID]: input.jobId,
        [LABEL_INSTANCE]: instanceId,
        [LABEL_ATTEMPT]: String(input.attempt),
        ...(Object.keys(secrets).length > 0 ? { [LABEL_SECRET_NAMES]: Object.keys(secrets).join(',') } : {}),
      },
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: false,
      OpenStdin: false,
      NetworkDisabled: true,
      HostConfig: {
        Init: true,
        NetworkMode: 'none',
        Privileged: false,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        Memory: input.resources.memoryMb * 1024 * 1024,
        MemorySwap: input.resources.memoryMb * 1024 * 1024,
        NanoCpus: Math.round(input.resources.cpus * 1e9),
        PidsLimit: input.resources.pidsLimit,
        Tmpfs: scratchMounts(input.resources.scratchMb),
        AutoRemove: false,
      },
    });
  } catch (err) {
    // Docker answers 404 to a create only for a missing image.
    if (isNotFound(err)) throw imageNotFound(input.image);
    if (!isConflict(err)) throw err;
    // A container of this name exists: an earlier attempt of this activity created it.
    const existing = docker.getContainer(name);
    const info = await existing.inspect();
    const labels = info.Config.Labels ?? {};
    if (labels[LABEL_JOB_ID] !== input.jobId || labels[LABEL_ATTEMPT] !== String(input.attempt)) throw err;
    return docker.getContainer(info.Id);
  }
}

/** Removes the container whatever state it is in; one already gone is fine. */
async function removeJobContainer(container: Docker.Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true });
    log.info('container removed', { containerId: container.id });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

async function removeQuietly(container: Docker.Container): Promise<void> {
  try {
    await removeJobContainer(container);
  } catch (err) {
    log.warn('could not remove container', { containerId: container.id, error: String(err) });
  }
}
