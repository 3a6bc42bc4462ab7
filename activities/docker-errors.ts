import { ApplicationFailure } from '@temporalio/activity';
import { FAILURE_CONTAINER_LOST } from '../domain/names.js';

/** Docker engine API errors carry the HTTP status as `statusCode`. */
export function dockerStatus(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

export const isNotFound = (err: unknown): boolean => dockerStatus(err) === 404;
export const isConflict = (err: unknown): boolean => dockerStatus(err) === 409;

/** A run activity that finds its container gone cannot finish the job. */
export function containerLost(containerId: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FAILURE_CONTAINER_LOST,
    message: `container ${containerId} no longer exists`,
    nonRetryable: true,
  });
}

export const isContainerLost = (err: unknown): boolean => err instanceof ApplicationFailure && err.type === FAILURE_CONTAINER_LOST;
