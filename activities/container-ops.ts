/**
 * The job container's life on its Docker engine, beside the pure spec it is made from
 * (container-spec.ts): create, inspect, wait, stop, remove, and how the engine's errors are told apart.
 */
import { ApplicationFailure, log } from '@temporalio/activity';
import type Docker from 'dockerode';
import { LABEL_ATTEMPT, LABEL_JOB_ID, SCRIPT_DIR } from '../domain/container-labels.js';
import { FAILURE_CONTAINER_LOST, FAILURE_IMAGE_NOT_FOUND } from '../domain/job-failures.js';
import { jobContainerName, jobContainerSpec, type JobContainerOptions } from './container-spec.js';
import { provisioningRejected } from './job-policy.js';
import type { ProvisionInput } from './types.js';

/** Docker engine API errors carry the HTTP status as `statusCode`. */
export function dockerStatus(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

export const isNotFound = (err: unknown): boolean => dockerStatus(err) === 404;
export const isConflict = (err: unknown): boolean => dockerStatus(err) === 409;

/** The engine refused the request itself (a 4xx): asking again gets the same answer. */
export function isClientError(err: unknown): boolean {
  const status = dockerStatus(err);
  return status !== undefined && status >= 400 && status < 500;
}

/** The engine's own words for an error (its JSON `message`), else the error's message. */
export function engineMessage(err: unknown): string {
  const message = (err as { json?: { message?: unknown } } | null)?.json?.message;
  return typeof message === 'string' ? message.trim() : String((err as Error | null)?.message ?? err);
}

/** A run activity that finds its container gone (or going) cannot finish the job. */
export function containerLost(containerId: string, how = 'no longer exists'): ApplicationFailure {
  return ApplicationFailure.create({
    type: FAILURE_CONTAINER_LOST,
    message: `container ${containerId} ${how}`,
    nonRetryable: true,
  });
}

export const isContainerLost = (err: unknown): boolean =>
  err instanceof ApplicationFailure && err.type === FAILURE_CONTAINER_LOST;

function imageNotFound(image: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FAILURE_IMAGE_NOT_FOUND,
    message: `image ${image} is not present on this host`,
    nonRetryable: true,
  });
}

/** Creates the job's container (not started); one an earlier attempt of the activity created is found again. */
export async function createJobContainer(
  docker: Docker,
  input: ProvisionInput,
  options: JobContainerOptions,
): Promise<Docker.Container> {
  const spec = jobContainerSpec(
    {
      ...input,
      secrets: input.secrets ?? {},
      imageVolumes: await imageVolumes(docker, input.image),
      holdAfterScript: input.holdForArtifacts,
      ...(input.inputs && input.inputs.length > 0 && { inputsVolume: true }),
    },
    options,
  );
  try {
    return await docker.createContainer(spec);
  } catch (err) {
    // Docker answers 404 to a create only for a missing image.
    if (isNotFound(err)) throw imageNotFound(input.image);
    // Any other refusal (a limit the engine cannot give, a bad value) is final.
    if (!isConflict(err) && isClientError(err))
      throw provisioningRejected(`the Docker engine refused the job's container: ${engineMessage(err)}`);
    if (!isConflict(err)) throw err;
    // A container of this name exists: an earlier attempt of this activity created it.
    const existing = docker.getContainer(jobContainerName(input.jobId, input.attempt));
    const info = await existing.inspect();
    const labels = info.Config.Labels ?? {};
    if (labels[LABEL_JOB_ID] !== input.jobId || labels[LABEL_ATTEMPT] !== String(input.attempt)) throw err;
    return docker.getContainer(info.Id);
  }
}

/** The volumes the image declares (`VOLUME`), but the script's directory, which is always one. */
async function imageVolumes(docker: Docker, image: string): Promise<string[]> {
  try {
    const info = await docker.getImage(image).inspect();
    return Object.keys(info.Config.Volumes ?? {}).filter((path) => path !== SCRIPT_DIR);
  } catch (err) {
    if (isNotFound(err)) throw imageNotFound(image);
    throw err;
  }
}

/** Whether the container stops within a couple of seconds (or `detach` lets go of it first). */
export async function stopsSoon(container: Docker.Container, detach: AbortSignal): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const exit = waitForExit(container, detach).then(() => true);
  // Observed here so a later failure of the wait never becomes an unhandled rejection.
  exit.catch(() => undefined);
  try {
    return await Promise.race([
      exit,
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The container's exit code once it has stopped; undefined when `detach` lets go of it first. */
export async function waitForExit(container: Docker.Container, detach: AbortSignal): Promise<number | undefined> {
  try {
    const { StatusCode } = (await container.wait({ abortSignal: detach })) as { StatusCode: number };
    return StatusCode;
  } catch (err) {
    if (detach.aborted) return undefined;
    if (isNotFound(err)) throw containerLost(container.id);
    throw err;
  }
}

export async function stopContainer(container: Docker.Container, graceSeconds: number): Promise<void> {
  try {
    // Docker sends SIGTERM (forwarded by docker-init to the process group), then SIGKILL after t.
    await container.stop({ t: graceSeconds });
  } catch (err) {
    // 304: already stopped; 404: already gone.
    const status = (err as { statusCode?: number }).statusCode;
    if (status !== 304 && !isNotFound(err)) throw err;
  }
}

/** The container's state; a container gone is lost to its run. */
export async function inspectContainer(container: Docker.Container): Promise<Docker.ContainerInspectInfo> {
  try {
    return await container.inspect();
  } catch (err) {
    if (isNotFound(err)) throw containerLost(container.id);
    throw err;
  }
}

/** Removes the container whatever state it is in; one already gone is fine. */
export async function removeJobContainer(container: Docker.Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true });
    log.info('container removed', { containerId: container.id });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

export async function removeQuietly(container: Docker.Container): Promise<void> {
  try {
    await removeJobContainer(container);
  } catch (err) {
    log.warn('could not remove container', { containerId: container.id, error: String(err) });
  }
}
