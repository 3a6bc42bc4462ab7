/**
 * The activities' contract: what each one takes, returns and heartbeats. Types only: the workflow
 * imports them (`import type`) with `Activities`, and never the implementations.
 */
import type { ArtifactsInput, JobUsage } from '../domain/artifacts.js';
import type { JobInputRef, JobResources } from '../domain/job-spec.js';

/** Input of `provisionContainer`. */
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
  /** The job declares artifacts: its container holds after the script for their collection. */
  holdForArtifacts?: boolean;
  /** A pipeline step's needs, whose artifacts land under /work/in/<step>/ (activities/step-inputs.ts). */
  inputs?: JobInputRef[];
}

/** What `provisionContainer` returns: the container it created, and where its remaining activities must run. */
export interface ProvisionedContainer {
  containerId: string;
  /** Identity of the Docker host holding the container. */
  host: string;
  /** Task queue served by the worker bound to that host. */
  hostTaskQueue: string;
  /** The container holds after the script (`holdForArtifacts`, and the image has a /bin/sh). */
  holding?: boolean;
  /** Why a job that declares artifacts cannot have them collected (no /bin/sh in its image). */
  holdSkipped?: string;
}

/** Heartbeat details of `provisionContainer`. */
export interface ProvisionProgress {
  phase: 'creating' | 'retrying';
  /** When the first failed attempt failed (ms since the epoch); carried across retries. */
  firstFailureAt?: number;
}

/** Input of `runScript`. */
export interface RunScriptInput {
  jobId: string;
  containerId: string;
  cancelGraceSeconds: number;
  attempt: number;
  /** Remove the container once the script has ended on its own (see runScript). */
  removeWhenDone?: boolean;
  /** The container holds after the script (script-hold.ts): its end is the end marker, not its exit. */
  holding?: boolean;
}

/** What `runScript` reports once the script's container has stopped. */
export interface ScriptOutcome {
  exitCode: number;
  oomKilled: boolean;
  startedAt: string;
  finishedAt: string;
  lastSeq: number;
  /** The run activity removed the container itself: the workflow needs no cleanup activity. */
  removed?: boolean;
  /** What the attempt used (cgroup figures); absent where the engine gave none. */
  usage?: JobUsage;
  /**
   * The run was stopped (or never started) because its host was told the job was cancelled or
   * out of time (`stopRun`), not by the script: its exit code is the stop's.
   */
  cancelled?: true;
}

/** Input of `stopRun`. */
export interface StopRunInput {
  containerId: string;
}

/** Input of `stopHeldScript`. */
export interface StopHeldScriptInput {
  containerId: string;
  cancelGraceSeconds: number;
}

/** Input of `collectArtifacts`. */
export interface CollectArtifactsInput {
  jobId: string;
  containerId: string;
  attempt: number;
  artifacts: ArtifactsInput;
  /** Why the container did not hold (then nothing is collected, and a system line says why). */
  holdSkipped?: string;
}

/** Heartbeat details of `runScript`: enough to reattach after a worker dies, and where the output's numbering stands. */
export interface RunHeartbeat {
  containerId: string;
  lastSeq: number;
  /** Seq after which this attempt's lines are numbered (0 for the first attempt). */
  seqBase?: number;
  /**
   * The last checkpoint: every line it counts is stored, or dropped past the cap. Absent from the
   * heartbeats of workers from before it (then the store says where the numbering stands).
   */
  output?: OutputPosition;
  /** When a warm container's script was released (its start); absent for cold containers. */
  releasedAt?: string;
}

/**
 * How far a run has numbered its container's output. Seq n is the n-th line in the order the run
 * read the output; each stream keeps its own order on every read, but two reads may interleave
 * stdout and stderr differently (Docker copies them separately). So a position counts each
 * stream's lines: a later read of the whole output skips that many lines of each stream, and the
 * numbering goes on exactly where it stopped.
 */
export interface OutputPosition {
  /** Seq of the last line numbered (stored, or dropped past the log cap). */
  seq: number;
  /** Lines of stdout numbered. */
  stdout: number;
  /** Lines of stderr numbered. */
  stderr: number;
  /** The log cap's count at this point. */
  cap: LogCapState;
}

/** What the log cap has counted so far. */
export interface LogCapState {
  /** What the lines stored cost the store (`storedLineCost`). */
  storedBytes: number;
  /** Seq of the first line dropped; 0 while under the cap. */
  firstDropped: number;
  droppedLines: number;
  /** Bytes of the output dropped (each line's text and its newline). */
  droppedBytes: number;
}

/** Input of `removeContainer`. */
export interface RemoveContainerInput {
  containerId: string;
}
