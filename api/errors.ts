import { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { ZodError } from 'zod';

/** Name of the one error shape among the OpenAPI document's component schemas. */
export const ERROR_COMPONENT = 'Error';

/** The one error shape of every 4xx/5xx answer (the `Error` component of `/openapi.json`). */
export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    }),
  })
  .openapi(ERROR_COMPONENT);
export type ErrorBody = z.infer<typeof ErrorSchema>;

/** An OpenAPI response entry answered with the one error shape. */
export const errorResponse = (description: string) => ({
  content: { 'application/json': { schema: ErrorSchema } },
  description,
});

/**
 * The same entry as it reads in the generated document (a reference to the `Error` component),
 * for the answers `openApiDocument` adds to every route after generation.
 */
export const errorResponseRef = (description: string) => ({
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${ERROR_COMPONENT}` } } },
  description,
});

export function errorBody(code: string, message: string, issues?: ErrorBody['error']['issues']): ErrorBody {
  return { error: issues ? { code, message, issues } : { code, message } };
}

export type ErrorIssue = NonNullable<ErrorBody['error']['issues']>[number];

/** A 400 that names each bad field (`path: message; …`). */
export function invalidRequest(c: Context, issues: ErrorIssue[]) {
  const message = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  return c.json(errorBody('invalid_request', message, issues), 400);
}

/** A validation failure as a 400 that names each bad field. */
export function validationError(c: Context, error: ZodError) {
  return invalidRequest(
    c,
    error.issues.map((issue) => ({ path: issue.path.map(String).join('.') || '(body)', message: issue.message })),
  );
}

const CODES: Record<number, string> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
};

/** Turns HTTPExceptions and unexpected errors into the one error shape. */
export function onError(err: Error, c: Context, log: (err: Error) => void) {
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    return c.json(errorBody(CODES[status] ?? 'error', err.message || 'request failed'), status);
  }
  log(err);
  return c.json(errorBody('internal', 'internal error'), 500);
}
