import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type Docker from 'dockerode';
import type { JobResources } from '../domain/job-spec.js';
import {
  LABEL_ATTEMPT,
  LABEL_INSTANCE,
  LABEL_JOB_ID,
  LABEL_MANAGED,
  LABEL_POOL,
  LABEL_SECRET_NAMES,
  SCRIPT_DIR,
} from '../domain/container-labels.js';
import { scriptCommand } from './script-archive.js';
import { holdCommand } from './script-hold.js';

/** What a job's container is made from. */
export interface JobContainerRequest {
  jobId: string;
  attempt: number;
  image: string;
  script: string;
  env: Record<string, string>;
  secrets: Record<string, string>;
  resources: JobResources;
  /** Paths the image declares as volumes (`VOLUME`): each gets a scratch tmpfs instead. */
  imageVolumes: string[];
  /** Hold the container after the script for artifact collection (see script-hold.ts). */
  holdAfterScript?: boolean;
  /** A pipeline step with needs: an anonymous volume at INPUTS_DIR takes their artifacts (step-inputs.ts). */
  inputsVolume?: boolean;
}

/**
 * A warm pool's container (warm-pool.ts): made like a job's, for no job yet. It carries the pool
 * label (its owner) instead of a job id, is named `name`, and runs the pool's launcher, which
 * waits on its stdin for the claiming job's release.
 */
export interface PoolContainerRequest {
  name: string;
  owner: string;
  image: string;
  resources: JobResources;
  imageVolumes: string[];
  /** The container's command: the launcher. */
  cmd: string[];
}

/** How this worker makes job containers. */
export interface JobContainerOptions {
  instanceId: string;
  /** The seccomp profile (JSON) job containers run under; see `loadSeccompProfile`. */
  seccompProfile: string;
  /** Most bytes of output the log store keeps per job; the engine's own log is sized from it. */
  logMaxBytes: number;
}

// Unprivileged uid/gid the script runs as (the worker image's `hodei` user).
const JOB_UID = 10001;
export const JOB_USER = `${JOB_UID}:${JOB_UID}`;
/** The job's working directory (and HOME): scratch space. */
export const WORK_DIR = '/work';

/** Env every job gets unless it sets the variable itself. */
const DEFAULT_ENV: Record<string, string> = {
  // Unbuffered output so lines stream as printed, not when a buffer fills.
  PYTHONUNBUFFERED: '1',
};

/**
 * The scratch space, the only places a job can write: size-limited tmpfs (memory, counted in the
 * container's memory limit), so a job that fills its disk fails alone and never grows the host's.
 */
function scratchMounts(scratchMb: number, imageVolumes: string[]): Record<string, string> {
  const opts = 'rw,nosuid,nodev';
  const mounts: Record<string, string> = {};
  // An image's own volumes would be directories on the host's disk: scratch instead.
  for (const volume of imageVolumes) mounts[volume] = `${opts},size=${scratchMb}m,mode=1777`;
  return {
    ...mounts,
    [WORK_DIR]: `${opts},size=${scratchMb}m,uid=${JOB_UID},gid=${JOB_UID},mode=0755`,
    '/tmp': `${opts},size=${scratchMb}m,mode=1777`,
    '/var/tmp': `${opts},size=64m,mode=1777`,
    '/run/lock': `${opts},size=1m,mode=1777`,
  };
}

/** Files of output the engine keeps per container: the one it writes, and the rotated ones before it. */
const ENGINE_LOG_FILES = 4;

/**
 * The engine's own log of the container, bounded: the `local` driver (a compact binary format,
 * about 27 bytes of framing per line; rotated files compressed) in ENGINE_LOG_FILES files of
 * the log cap's size each (1 MiB at least), so it takes at most 4× the cap of the host's disk,
 * and holds at least the last 3× the cap of output.
 *
 * The run activity reads this log from its start when it reattaches (its worker died, or the
 * attach broke), skipping the lines it numbered already, per stream. That is exact while the
 * engine still holds the whole output, which 3× the cap does for every line the store can keep
 * (the cap counts a line's bytes and its newline: lines of 13 bytes or more on average).
 * Edge case: once the engine has rotated away the output's head, a reattach skips the wrong
 * lines. Past the cap that only makes the count of dropped lines low; before it (a flood of
 * very short lines, or far more output than the cap written while no worker read it) lines
 * after the checkpoint are lost, though none is doubled: each seq is still given once.
 */
export function engineLogConfig(logMaxBytes: number): Docker.HostConfig['LogConfig'] {
  const fileBytes = Math.max(logMaxBytes, 1024 * 1024);
  return {
    Type: 'local',
    Config: { 'max-size': String(fileBytes), 'max-file': String(ENGINE_LOG_FILES), compress: 'true' },
  };
}

/** The directory a pipeline step's inputs land in (activities/step-inputs.ts): inside the working directory. */
export const INPUTS_DIR = `${WORK_DIR}/in`;

/** An anonymous volume (no Source) at `target` (the script's directory), created empty, with the container's labels. */
function scriptVolume(labels: Record<string, string>, target = SCRIPT_DIR): Docker.MountSettings {
  return {
    Type: 'volume',
    Source: '',
    Target: target,
    // The engine takes VolumeOptions' other fields as optional; @types/dockerode wants them all.
    VolumeOptions: { NoCopy: true, Labels: labels } as Docker.MountSettings['VolumeOptions'],
  };
}

/** The container a job's attempt runs in, created (not started) with this spec. */
export function jobContainerSpec(
  request: JobContainerRequest,
  options: JobContainerOptions,
): Docker.ContainerCreateOptions {
  const { secrets } = request;
  const env = { ...DEFAULT_ENV, HOME: WORK_DIR, ...request.env, ...secrets };
  const labels = {
    [LABEL_MANAGED]: 'true',
    [LABEL_JOB_ID]: request.jobId,
    [LABEL_INSTANCE]: options.instanceId,
    [LABEL_ATTEMPT]: String(request.attempt),
  };
  return {
    ...hardenedSpec(request, env, labels, options),
    name: jobContainerName(request.jobId, request.attempt),
    Cmd: request.holdAfterScript ? holdCommand(scriptCommand(request.script)) : scriptCommand(request.script),
    Labels: {
      ...labels,
      ...(Object.keys(secrets).length > 0 ? { [LABEL_SECRET_NAMES]: Object.keys(secrets).join(',') } : {}),
    },
  };
}

/**
 * The container of a warm pool (warm-pool.ts): the job container's spec (the same hardening,
 * limits and mounts) with no job's env, the pool label, and stdin open for the launcher's release.
 */
export function poolContainerSpec(
  request: PoolContainerRequest,
  options: JobContainerOptions,
): Docker.ContainerCreateOptions {
  const labels = { [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: options.instanceId, [LABEL_POOL]: request.owner };
  const spec = hardenedSpec(request, { ...DEFAULT_ENV, HOME: WORK_DIR }, labels, options);
  return { ...spec, name: request.name, Cmd: request.cmd, Labels: labels, OpenStdin: true, StdinOnce: false };
}

/** What job and pool containers share: user, isolation, limits, scratch and script mounts, engine log. */
function hardenedSpec(
  request: { image: string; resources: JobResources; imageVolumes: string[]; inputsVolume?: boolean },
  env: Record<string, string>,
  labels: Record<string, string>,
  options: JobContainerOptions,
): Docker.ContainerCreateOptions {
  const { resources } = request;
  return {
    Image: request.image,
    Env: [
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      // docker-init (tini) forwards signals to the script's whole process group.
      'TINI_KILL_PROCESS_GROUP=1',
    ],
    User: JOB_USER,
    WorkingDir: WORK_DIR,
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
      SecurityOpt: ['no-new-privileges', `seccomp=${options.seccompProfile}`],
      Memory: resources.memoryMb * 1024 * 1024,
      MemorySwap: resources.memoryMb * 1024 * 1024,
      NanoCpus: Math.round(resources.cpus * 1e9),
      PidsLimit: resources.pidsLimit,
      // Nothing but the scratch mounts is writable: the image's files, the home directory in it
      // and Docker's /etc/hosts and friends are read-only, so a job cannot fill the host's disk.
      ReadonlyRootfs: true,
      Tmpfs: scratchMounts(resources.scratchMb, request.imageVolumes),
      // The script's directory: Docker copies into a created container only onto its writable
      // layer or a volume, and the layer is read-only. An anonymous volume, empty (no copy of
      // the image's files), owned by root and 0755: the job's user can read, never write it.
      // Removed with the container (`v: true`); labelled like it, so one left behind (a container
      // removed without `v`) can be told apart.
      // A pipeline step's inputs: the same kind of volume, nested in the /work tmpfs (the engine
      // mounts the shallower path first), filled before the start; on the engine's disk, bounded
      // by the needed jobs' artifacts, and removed like the script's.
      Mounts: request.inputsVolume ? [scriptVolume(labels), scriptVolume(labels, INPUTS_DIR)] : [scriptVolume(labels)],
      LogConfig: engineLogConfig(options.logMaxBytes),
      AutoRemove: false,
    },
  };
}

/** What Docker takes in a container name after its first character. */
const NAME_CHARS = /[^a-zA-Z0-9_.-]/g;

/**
 * The container's name: `hodei-<job id>-<attempt>`. A job id with characters Docker refuses in a
 * name (a scheduled job's, `<schedule>-2030-01-01T09:00:00Z`) has them replaced by `_` and a
 * short digest of the id appended, so two ids never share a name.
 */
export const jobContainerName = (jobId: string, attempt: number) => {
  const safe = jobId.replace(NAME_CHARS, '_');
  const id = safe === jobId ? jobId : `${safe}-${createHash('sha256').update(jobId).digest('hex').slice(0, 8)}`;
  return `hodei-${id}-${attempt}`;
};

/**
 * The seccomp profile of job containers: Docker's default profile as of the engine this
 * platform targets (moby v20.10.24, `profiles/seccomp/default.json`), with one change: `socket`
 * is allowed for every address family but AF_VSOCK (40), which reaches the hypervisor of a VM
 * host (answered EPERM, like any syscall the profile denies); `socketcall`, the 32-bit
 * multiplexer whose arguments seccomp cannot see, answers ENOSYS, so 32-bit programs use
 * `socket` itself (as moby's profile did from v0.2.2 of moby/profiles). A profile given to
 * Docker replaces its default, so it is complete. Read once at worker start; fails fast when
 * the file is missing or not JSON.
 */
export function loadSeccompProfile(file: URL | string = new URL('./seccomp-profile.json', import.meta.url)): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { defaultAction?: unknown; syscalls?: unknown };
  if (typeof profile.defaultAction !== 'string' || !Array.isArray(profile.syscalls)) {
    throw new Error(`${String(file)} is not a seccomp profile`);
  }
  return JSON.stringify(profile);
}
