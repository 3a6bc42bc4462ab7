import { ApplicationFailure, Context, log } from '@temporalio/activity';
import type Docker from 'dockerode';
import { SCRIPT_DIR } from '../domain/container-labels.js';
import { FAILURE_PROVISIONING_FAILED } from '../domain/job-failures.js';
import type { JobLimits } from '../domain/resolve-job.js';
import type { LogStore } from '../log-store/log-store.js';
import type { JobContainerOptions } from './container-spec.js';
import { createJobContainer, isContainerLost, isNotFound, removeJobContainer, removeQuietly } from './container-ops.js';
import { ContainerEvents } from './engine-outage.js';
import { Heartbeats } from './heartbeats.js';
import type { HostSlots } from './host-slots.js';
import { graceSeconds, provisionIssues, provisioningRejected } from './job-policy.js';
import { failingClearly } from './log-store-failure.js';
import { runScriptInContainer, stopRunHere } from './run-script.js';
import { scriptArchive } from './script-archive.js';
import type { ArtifactStore } from '../artifact-store/artifact-store.js';
import type { ArtifactsSummary, JobUsage } from '../domain/artifacts.js';
import { collectFromContainer, systemLine } from './collect-artifacts.js';
import { inputsUnavailable, placeStepInputs } from './step-inputs.js';
import { stopHeldScript } from './container-exec.js';
import { UsageSampler } from './usage-sampler.js';
import { forgetClaim, type WarmPool } from './warm-pool.js';
import type {
  CollectArtifactsInput,
  StopHeldScriptInput,
  StopRunInput,
  ProvisionedContainer,
  ProvisionInput,
  ProvisionProgress,
  RemoveContainerInput,
  RunScriptInput,
  ScriptOutcome,
} from './types.js';

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
  /** The operator's limits, checked again on every job this worker receives (`HODEI_ALLOWED_IMAGES`, `HODEI_MAX_*`). */
  limits: JobLimits;
  /** The seccomp profile (JSON) job containers run under: `loadSeccompProfile()`. */
  seccompProfile: string;
  /** Where collected artifacts go (`HODEI_ARTIFACT_STORE`); jobs that declare artifacts need it. */
  artifactStore?: ArtifactStore;
  /** Told each finished attempt's usage and each collection (the worker's metrics). */
  onUsage?: (usage: JobUsage) => void;
  onArtifacts?: (summary: ArtifactsSummary, seconds: number) => void;
  /** Warm containers jobs that fit claim instead of a new one (`HODEI_WARM_POOL`; warm-pool.ts). */
  warmPool?: WarmPool;
}

/** Whether a created container's image has the /bin/sh the hold wrapper runs in (a stat of its file system). */
async function holdingShell(
  container: Docker.Container,
): Promise<Pick<ProvisionedContainer, 'holding' | 'holdSkipped'>> {
  try {
    await container.infoArchive({ path: '/bin/sh' });
    return { holding: true };
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return { holding: false, holdSkipped: 'the image has no /bin/sh' };
  }
}

/** Heartbeats of a provisioning that takes long (a busy engine): none before this, so most send none. */
const PROVISION_HEARTBEAT_AFTER_MS = 2000;

export function createActivities(deps: ActivityDeps) {
  const { host, instanceId } = deps;
  // A write the store's disk refuses fails the job, saying so (never retried against the same disk).
  const logStore = failingClearly(deps.logStore);
  const { docker } = host;
  const logMaxBytes = deps.logMaxBytes ?? 100 * 1024 * 1024;
  const heartbeatIntervalMs = deps.heartbeatIntervalMs ?? 100;
  const containerOptions: JobContainerOptions = { instanceId, seccompProfile: deps.seccompProfile, logMaxBytes };

  // The host's CPU cores, asked of the engine once (again after a failure).
  let cores: Promise<number> | undefined;
  const hostCores = (): Promise<number> => {
    if (!cores) {
      cores = docker.info().then((info: { NCPU: number }) => info.NCPU);
      cores.catch(() => (cores = undefined));
    }
    return cores;
  };

  /** A pipeline step's inputs into its created container; a failure that is final gets a system line. */
  const provideInputs = async (container: Docker.Container, input: ProvisionInput): Promise<void> => {
    if (!deps.artifactStore) throw inputsUnavailable('this worker has no artifact store for the step inputs');
    try {
      await placeStepInputs(container, deps.artifactStore, input.inputs ?? []);
    } catch (err) {
      if (err instanceof ApplicationFailure) {
        await systemLine(logStore, input.jobId, input.attempt, `[hodei] step inputs not placed: ${err.message}`);
      }
      throw err;
    }
  };

  const claimWarm = async (input: ProvisionInput, retry: boolean): Promise<Docker.Container | undefined> => {
    try {
      return await deps.warmPool?.claim(input, retry);
    } catch (err) {
      log.warn('warm pool: claim failed, creating a container', { jobId: input.jobId, error: String(err) });
      return undefined;
    }
  };

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
      // A workflow started on Temporal directly never went through the API: the same checks again.
      const issues = provisionIssues(input, deps.limits);
      if (issues.length > 0) {
        throw provisioningRejected(
          `job refused by the worker: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
        );
      }
      // No heartbeat on the way unless it takes long: each one the server records is a write to
      // the job's state, and creating a container usually takes well under the heartbeat timeout.
      // A failed attempt heartbeats (below) to carry when failures began across retries.
      const beats = new Heartbeats(ctx, prior).every(PROVISION_HEARTBEAT_AFTER_MS);
      let created: Docker.Container | undefined;
      try {
        const available = await hostCores();
        if (input.resources.cpus > available) {
          throw provisioningRejected(
            `resources.cpus: ${input.resources.cpus} is more than the ${available} CPU cores of host ${host.id}`,
          );
        }
        // Warm pool hook: a job that fits takes an idle, started container (script delivered).
        created = await claimWarm(input, ctx.info.attempt > 1);
        if (created) {
          if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
          log.info('warm container claimed', { jobId: input.jobId, containerId: created.id, host: host.id });
          return { containerId: created.id, host: host.id, hostTaskQueue: host.taskQueue };
        }
        created = await createJobContainer(docker, input, containerOptions);
        let hold: Pick<ProvisionedContainer, 'holding' | 'holdSkipped'> = {};
        if (input.holdForArtifacts) {
          hold = await holdingShell(created);
          if (!hold.holding) {
            // The wrapper needs a /bin/sh: without one the job runs as it would with no artifacts.
            await removeJobContainer(created);
            created = await createJobContainer(docker, { ...input, holdForArtifacts: false }, containerOptions);
          }
        }
        await created.putArchive(await scriptArchive(input.script), { path: SCRIPT_DIR });
        if (input.inputs && input.inputs.length > 0) await provideInputs(created, input);
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
        log.info('container provisioned', { jobId: input.jobId, containerId: created.id, host: host.id });
        return { containerId: created.id, host: host.id, hostTaskQueue: host.taskQueue, ...hold };
      } catch (err) {
        if (created) await removeQuietly(created);
        if (err instanceof ApplicationFailure || ctx.cancellationSignal.aborted) throw err;
        // The engine failed (unreachable, overloaded…): Temporal retries with backoff, until the
        // provisioning deadline, counted from the first failure, passes.
        const firstFailureAt = prior?.firstFailureAt ?? Date.now();
        beats.carry(() => ({ phase: 'retrying', firstFailureAt }) satisfies ProvisionProgress);
        if (Date.now() - firstFailureAt >= deps.provisionDeadlineMs) {
          throw ApplicationFailure.create({
            type: FAILURE_PROVISIONING_FAILED,
            message: `could not provision a container for ${Math.round(deps.provisionDeadlineMs / 1000)}s: ${(err as Error).message}`,
            nonRetryable: true,
          });
        }
        throw err;
      } finally {
        beats.stop();
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
      const ctx = Context.current();
      const container = docker.getContainer(input.containerId);
      // From the activity's start to its end: every slow step (the store, the engine's attach,
      // start, inspect, the removal) is inside the heartbeat timeout, so the server never gives
      // up on an attempt that is only slow.
      const beats = new Heartbeats(ctx, ctx.info.heartbeatDetails).every(heartbeatIntervalMs);
      // Listening before the container can end: an exit its engine caused is not the script's.
      const engineEvents = ContainerEvents.of(docker, instanceId);
      // A holding container's wrapper reports exact figures at the script's end; the others are sampled.
      const sampler = input.holding ? undefined : new UsageSampler(container).start();
      try {
        let outcome: ScriptOutcome;
        try {
          outcome = await runScriptInContainer(ctx, {
            container,
            logStore,
            jobId: input.jobId,
            attempt: input.attempt,
            // Within the operator's maximum whoever started the workflow.
            cancelGraceSeconds: graceSeconds(input.cancelGraceSeconds, deps.limits),
            heartbeatIntervalMs,
            heartbeats: beats,
            logMaxBytes,
            holding: input.holding,
          });
          const sampled = sampler?.stop();
          if (!outcome.usage && sampled) outcome = { ...outcome, usage: sampled };
          if (outcome.usage) deps.onUsage?.(outcome.usage);
          // A holding container has not exited: its end is the wrapper's record, no engine's kill.
          // A run its host stopped for the job's cancel was killed by that stop, not by the engine.
          if (!input.holding && !outcome.cancelled) await engineEvents.checkExit(container, outcome.exitCode);
        } catch (err) {
          const recorded = isContainerLost(err) ? await logStore.recordedExit(input.jobId, input.attempt) : undefined;
          if (recorded) return { ...recorded, removed: true };
          throw err;
        } finally {
          forgetClaim(container.id);
          sampler?.stop();
          // The container has (almost always) stopped: an exited container holds no slot, so the
          // next queued job may go now, before this one's cleanup.
          host.slots.notify();
        }
        // A cancelled run leaves its container to the workflow's cleanup, as a cancel always has.
        if (!input.removeWhenDone || outcome.cancelled) return outcome;
        await logStore.recordExit(input.jobId, input.attempt, outcome);
        try {
          await removeJobContainer(container);
        } catch (err) {
          // The workflow's cleanup activity tries again, with its deadline.
          log.warn('could not remove container after its script ended', {
            containerId: container.id,
            error: String(err),
          });
          return outcome;
        }
        return { ...outcome, removed: true };
      } finally {
        beats.stop();
      }
    },

    /**
     * Collects the job's artifacts from its holding container (after its script, before its
     * removal) into the artifact store; see collect-artifacts.ts. Redone from the start when
     * retried: the same content lands under the same names, and the manifest is written last.
     */
    async collectArtifacts(input: CollectArtifactsInput): Promise<ArtifactsSummary> {
      if (!deps.artifactStore) throw new Error('this worker has no artifact store');
      const started = Date.now();
      const summary = await collectFromContainer(
        Context.current(),
        { container: docker.getContainer(input.containerId), store: deps.artifactStore, logStore },
        input,
      );
      deps.onArtifacts?.(summary, (Date.now() - started) / 1000);
      log.info('artifacts collected', { jobId: input.jobId, ...summary });
      return summary;
    },

    /**
     * At a job's deadline, stops the script of a holding container (SIGTERM, SIGKILL after the
     * grace period) but not the container: the run activity then sees the script's end and the
     * timed-out job's artifacts can be collected before the container goes.
     */
    async stopHeldScript(input: StopHeldScriptInput): Promise<void> {
      const ctx = Context.current();
      await stopHeldScript(
        docker.getContainer(input.containerId),
        graceSeconds(input.cancelGraceSeconds, deps.limits),
        () => ctx.heartbeat(),
      );
    },

    /**
     * The job was cancelled (or is out of time) while its script runs here: its run stops the
     * container now instead of at its next heartbeat (see `stopRunHere`). Sent by the workflow
     * beside the cancel of the run activity, which stays the way the cancel reaches a run that
     * is not in this process.
     */
    async stopRun(input: StopRunInput): Promise<void> {
      const how = stopRunHere(input.containerId);
      log.info('job cancelled: its run told to stop', { containerId: input.containerId, how });
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
