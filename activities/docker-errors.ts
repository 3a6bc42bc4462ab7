import { ApplicationFailure } from '@temporalio/activity';
import { FAILURE_CONTAINER_LOST } from '../domain/job-failures.js';

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

export const isContainerLost = (err: unknown): boolean => err instanceof ApplicationFailure && err.type === FAILURE_CONTAINER_LOST;
