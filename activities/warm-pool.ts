/**
 * Warm containers (`HODEI_WARM_POOL`, docs/capacity.md#warm-containers): each worker keeps a few containers of
 * its default image and resource shape created and started ahead, idle, each for exactly one job.
 * A pool container is made by the job containers' spec builder (container-spec.ts: the same user,
 * isolation, limits and mounts), has no network and no job's env, and runs the launcher below,
 * which waits on its stdin. A job that fits claims one at provisioning (`claim`: renamed
 * `hodei-<job id>-<attempt>`, limits updated, script and env delivered as files in the script
 * volume); the run activity opens the output attach, then releases the launcher
 * (`attachAndRelease`), and the container lives on as a cold one would: one job, removed after.
 * Hooks: activities/index.ts (provisionContainer), run-script.ts (start), host-slots.ts (idle
 * ones hold no slot), worker/reaper.ts (idle ones of other workers; claimed ones by name).
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import type Docker from 'dockerode';
import { extract, pack } from 'tar-stream';
import { LABEL_POOL, SCRIPT_DIR, SCRIPT_PATH } from '../domain/container-labels.js';
import type { JobResources } from '../domain/job-spec.js';
import { isConflict, isNotFound } from './container-ops.js';
import { jobContainerName, poolContainerSpec, type JobContainerOptions } from './container-spec.js';
import { scriptCommand } from './script-archive.js';
import type { ProvisionInput } from './types.js';

/** Prefix of an idle pool container's name: `hodei-pool-<instance>-<owner>-<n>`. */
export const POOL_NAME_PREFIX = 'hodei-pool-';
/** What the launcher sources once released: the job's env (exports), then the exec of its script. */
const RUN_FILE = `${SCRIPT_DIR}/run`;
/** The job's secret values, for the run activity's masking after a worker restart: root's only (0400). */
const SECRETS_FILE = `${SCRIPT_DIR}/secrets.json`;
/**
 * The pool container's command, shell builtins only: wait for one line on stdin (the release),
 * then source the run file, whose last line execs the script as a cold container runs it. A
 * stop (SIGTERM from docker-init) ends the wait. `$0` names it in `docker top`.
 */
const LAUNCHER_NAME = 'hodei-launcher';
export const LAUNCHER = ['/bin/bash', '-c', `read -r _ || exit 0; . ${RUN_FILE}`, LAUNCHER_NAME];

/** A single-quoted shell word: `'` becomes `'\''`. */
const shellQuote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

/** The run file: every env var and secret exported (names are `[A-Za-z_][A-Za-z0-9_]*`), then the script's exec. */
export function runFile(env: Record<string, string>, secrets: Record<string, string>, script: string): string {
  const exports = Object.entries({ ...env, ...secrets }).map(([k, v]) => `export ${k}=${shellQuote(v)}\n`);
  // As a cold container: stdin is /dev/null, the script is the container's process (exec).
  return `${exports.join('')}exec ${scriptCommand(script).map(shellQuote).join(' ')} </dev/null\n`;
}

/** The script, the run file (readable by the job's user, as its env is) and the secrets file, for putArchive. */
async function claimArchive(input: ProvisionInput): Promise<Buffer> {
  const archive = pack();
  const entry = (file: string, mode: number, content: string) =>
    archive.entry({ name: path.posix.relative(SCRIPT_DIR, file), mode, uid: 0, gid: 0, mtime: new Date() }, content);
  const secrets = input.secrets ?? {};
  entry(SCRIPT_PATH, 0o555, input.script);
  entry(SECRETS_FILE, 0o400, JSON.stringify(Object.values(secrets)));
  entry(RUN_FILE, 0o444, runFile(input.env, secrets, input.script));
  archive.finalize();
  return buffer(archive);
}

/** Whether the container is a pool's (idle or claimed), from its labels. */
export const isPoolContainer = (labels: Record<string, string> | null | undefined): boolean =>
  Boolean(labels?.[LABEL_POOL]);

/** Whether a container name (as the engine lists it, with or without `/`) is an idle pool container's. */
export const isIdlePoolName = (name: string): boolean => name.replace(/^\//, '').startsWith(POOL_NAME_PREFIX);

/**
 * The job id and attempt of a claimed pool container, from its name (`hodei-<job id>-<attempt>`;
 * only jobs whose id is a valid name claim one, so the name is exact).
 */
export function claimedJob(name: string): { jobId: string; attempt: number } | undefined {
  const match = /^\/?hodei-(.+)-(\d+)$/.exec(name);
  if (!match || isIdlePoolName(name)) return undefined;
  return { jobId: match[1]!, attempt: Number(match[2]) };
}

/** Containers claimed in this process and not yet released, with their secret values. */
const claimed = new Map<string, { secrets: string[]; released: boolean }>();

/** The secret values a claimed container's output is masked with: this process's record, else its secrets file. */
export async function poolSecrets(container: Docker.Container): Promise<string[]> {
  const known = claimed.get(container.id);
  if (known) return known.secrets;
  const tar = (await container.getArchive({ path: SECRETS_FILE })) as unknown as Readable;
  const files = extract();
  let content = '';
  files.on('entry', (_header, stream, next) => {
    stream.on('data', (chunk: unknown) => (content += String(chunk)));
    stream.on('end', next);
  });
  await new Promise<void>((resolve, reject) => {
    files.on('finish', resolve).on('error', reject);
    tar.on('error', reject).pipe(files);
  });
  return JSON.parse(content) as string[];
}

/** Whether the container's launcher still waits for its release (else its script runs, or ran). */
async function launcherWaiting(container: Docker.Container): Promise<boolean> {
  const known = claimed.get(container.id);
  if (known) return !known.released;
  // Another process claimed it (this worker restarted, or an earlier try of the run ended): the
  // launcher's own process says. Only the launcher's: docker-init, the container's first process,
  // keeps the launcher's command line in its arguments for good, and a released launcher has
  // exec'd the script. (Taking init for the launcher re-attached a running job's output from the
  // present on: the lines printed meanwhile were lost.)
  const top = (await container.top().catch(() => undefined)) as
    { Titles?: string[]; Processes?: string[][] } | undefined;
  const cmd = top?.Titles?.indexOf('CMD') ?? -1;
  return (top?.Processes ?? []).some((row) => isLauncherCommand(row[cmd < 0 ? row.length - 1 : cmd] ?? ''));
}

/** Whether a process's command line (as `docker top` shows it) is the waiting launcher's own. */
const isLauncherCommand = (command: string): boolean =>
  command.startsWith(`${LAUNCHER[0]} `) && command.endsWith(` ${LAUNCHER_NAME}`);

/**
 * Opens the output attach of a claimed container whose launcher waits, then releases it (one
 * line on stdin): the attach sees the script's output from its first byte. Undefined when the
 * container is no waiting pool container (its script was released before: read its log).
 * `cancelled` is looked at between the two: a cancel before the release never runs the script.
 */
export async function attachAndRelease(
  container: Docker.Container,
  labels: Record<string, string> | null | undefined,
  cancelled: AbortSignal,
): Promise<Readable | undefined> {
  if (!isPoolContainer(labels) || !(await launcherWaiting(container))) return undefined;
  const attached = (await container.attach({
    stream: true,
    stdin: true,
    stdout: true,
    stderr: true,
    hijack: true,
  })) as unknown as NodeJS.ReadWriteStream & Readable;
  attached.on('error', () => undefined);
  if (cancelled.aborted) {
    attached.destroy();
    throw cancelled.reason;
  }
  attached.write('go\n');
  const known = claimed.get(container.id);
  if (known) known.released = true;
  return attached;
}

/** Forgets a claimed container once its run is over. */
export function forgetClaim(containerId: string): void {
  claimed.delete(containerId);
}

export interface WarmPoolOptions {
  docker: Docker;
  /** Idle containers kept (`HODEI_WARM_POOL`). */
  size: number;
  /** The worker's default image (`HODEI_WORKER_IMAGE`). */
  image: string;
  /** The default resource shape (`HODEI_JOB_*`); cpus, memory and pids are updated at a claim, scratch must match. */
  resources: JobResources;
  containerOptions: JobContainerOptions;
  log?: (message: string, meta: Record<string, unknown>) => void;
}

/**
 * Most env vars and secrets a job may have to take a pool container: the launcher sources them
 * one `export` at a time, far slower than the engine's own env for tens of thousands (45,000 took
 * minutes on a loaded host), so such a job takes the cold path.
 */
const MAX_POOL_ENV = 256;

/** How long a refill waits after a failure (the engine busy or gone, the image missing), ms. */
const REFILL_BACKOFF_MS = 5000;
/** How often the default image is looked at for a rebuild while the pool is idle, ms. */
const IMAGE_CHECK_MS = 10_000;

/** One worker's pool of idle containers. */
export class WarmPool {
  /** This worker process, on its pool containers' label: another worker's idle ones are its reaper's. */
  readonly owner = randomUUID().slice(0, 8);
  private readonly idle: string[] = [];
  private creating = 0;
  private counter = 0;
  private stopped = false;
  private backoff: NodeJS.Timeout | undefined;
  private imageTimer: NodeJS.Timeout | undefined;
  private imageId: string | undefined;

  constructor(private readonly options: WarmPoolOptions) {}

  /** Idle containers ready now (the metrics' gauge). */
  get idleCount(): number {
    return this.idle.length;
  }

  start(): this {
    if (this.options.size === 0) return this;
    this.refill();
    this.imageTimer = setInterval(() => void this.checkImage().catch(() => undefined), IMAGE_CHECK_MS);
    this.imageTimer.unref();
    return this;
  }

  /** Removes the idle containers (a worker shutting down); claimed ones are their jobs'. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.backoff);
    clearInterval(this.imageTimer);
    await Promise.all(this.idle.splice(0).map((id) => this.discard(id)));
  }

  /**
   * Whether the job can take a pool container: default image and scratch, no inputs, no artifacts
   * hold, a modest env, an id that is a name.
   */
  fits(input: ProvisionInput): boolean {
    const { image, resources } = this.options;
    return (
      this.options.size > 0 &&
      input.image === image &&
      !input.holdForArtifacts &&
      !input.inputs?.length &&
      input.resources.scratchMb === resources.scratchMb &&
      Object.keys(input.env).length + Object.keys(input.secrets ?? {}).length <= MAX_POOL_ENV &&
      jobContainerName(input.jobId, input.attempt) === `hodei-${input.jobId}-${input.attempt}`
    );
  }

  /**
   * A started pool container made the job's: renamed, limits updated, script and env delivered.
   * Undefined when none fits or is ready (the caller takes the cold path). A container found
   * stopped, or of an image since rebuilt, is discarded, never handed out.
   */
  async claim(input: ProvisionInput, retry = false): Promise<Docker.Container | undefined> {
    if (!this.fits(input)) return undefined;
    const { docker } = this.options;
    const name = jobContainerName(input.jobId, input.attempt);
    // A retried provisioning may have claimed one already (its answer was lost): that one is the job's.
    if (retry) {
      const earlier = await this.earlierClaim(name, input).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
      if (earlier) return earlier;
    }
    for (let id = this.idle.shift(); id !== undefined; id = this.idle.shift()) {
      this.refill();
      const container = docker.getContainer(id);
      const [info, image] = await Promise.all([
        container.inspect().catch(() => undefined),
        docker
          .getImage(this.options.image)
          .inspect()
          .catch(() => undefined),
      ]);
      if (image && image.Id !== this.imageId) this.drain(image.Id);
      if (!info?.State.Running || !image || info.Image !== image.Id) {
        void this.discard(id);
        continue;
      }
      try {
        await container.rename({ name });
      } catch (err) {
        this.idle.unshift(id);
        // An earlier try of this provisioning claimed one already: that one is the job's.
        if (isConflict(err)) return await this.earlierClaim(name, input);
        throw err;
      }
      try {
        await this.applyLimits(container, input.resources);
        await container.putArchive(await claimArchive(input), { path: SCRIPT_DIR });
      } catch (err) {
        await this.discard(id);
        throw err;
      }
      claimed.set(id, { secrets: Object.values(input.secrets ?? {}), released: false });
      return container;
    }
    return undefined;
  }

  /** The job's container claimed by an earlier try (its files delivered again); undefined when it is a cold one. */
  private async earlierClaim(name: string, input: ProvisionInput): Promise<Docker.Container | undefined> {
    const existing = this.options.docker.getContainer(name);
    const info = await existing.inspect();
    if (!isPoolContainer(info.Config.Labels)) return undefined;
    const container = this.options.docker.getContainer(info.Id);
    await this.applyLimits(container, input.resources);
    await container.putArchive(await claimArchive(input), { path: SCRIPT_DIR });
    if (!claimed.has(info.Id)) claimed.set(info.Id, { secrets: Object.values(input.secrets ?? {}), released: false });
    return container;
  }

  private async applyLimits(container: Docker.Container, resources: JobResources): Promise<void> {
    const shape = this.options.resources;
    if (
      resources.cpus === shape.cpus &&
      resources.memoryMb === shape.memoryMb &&
      resources.pidsLimit === shape.pidsLimit
    )
      return;
    const memory = resources.memoryMb * 1024 * 1024;
    await container.update({
      Memory: memory,
      MemorySwap: memory,
      NanoCpus: Math.round(resources.cpus * 1e9),
      PidsLimit: resources.pidsLimit,
    });
  }

  /** Creates containers until the pool is full again, in the background. */
  private refill(): void {
    if (this.stopped || this.backoff) return;
    while (this.idle.length + this.creating < this.options.size) {
      this.creating += 1;
      this.createOne()
        .then((id) => {
          if (this.stopped) void this.discard(id);
          else this.idle.push(id);
        })
        .catch((err: unknown) => {
          this.options.log?.('warm pool: could not create a container', { error: String(err) });
          this.backoff = setTimeout(() => {
            this.backoff = undefined;
            this.refill();
          }, REFILL_BACKOFF_MS);
          this.backoff.unref();
        })
        .finally(() => (this.creating -= 1));
    }
  }

  private async createOne(): Promise<string> {
    const { docker, image, resources, containerOptions } = this.options;
    const info = await docker.getImage(image).inspect();
    if (info.Id !== this.imageId) this.drain(info.Id);
    const imageVolumes = Object.keys(info.Config.Volumes ?? {}).filter((p) => p !== SCRIPT_DIR);
    const instance = containerOptions.instanceId;
    const name = `${POOL_NAME_PREFIX}${instance}-${this.owner}-${++this.counter}`;
    const container = await docker.createContainer(
      poolContainerSpec({ name, owner: this.owner, image, resources, imageVolumes, cmd: LAUNCHER }, containerOptions),
    );
    try {
      await container.start();
    } catch (err) {
      await this.discard(container.id);
      throw err;
    }
    return container.id;
  }

  /** The default image was rebuilt (its id changed): the idle containers of the old one go. */
  private drain(imageId: string): void {
    const previous = this.imageId;
    this.imageId = imageId;
    if (previous === undefined) return;
    this.options.log?.('warm pool: image rebuilt, draining', { image: this.options.image, imageId });
    for (const id of this.idle.splice(0)) void this.discard(id);
    this.refill();
  }

  private async checkImage(): Promise<void> {
    if (this.stopped) return;
    const info = await this.options.docker.getImage(this.options.image).inspect();
    if (info.Id !== this.imageId) this.drain(info.Id);
  }

  private async discard(id: string): Promise<void> {
    try {
      await this.options.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      if (!isNotFound(err)) this.options.log?.('warm pool: could not remove a container', { id, error: String(err) });
    }
  }
}
