import type { OpenAPIHono } from '@hono/zod-openapi';
import { requiredScope } from '../domain/api-scopes.js';
import { errorResponseRef as errorResponse } from './errors.js';

type Doc = ReturnType<OpenAPIHono['getOpenAPI31Document']>;
type Operation = { security?: unknown[]; responses?: Record<string, unknown> };

const SSE_EVENT = {
  type: 'object',
  properties: {
    event: { type: 'string', description: 'absent (or "message") for a line; a named event otherwise' },
    id: { type: 'string' },
    data: { type: 'string', contentMediaType: 'application/json' },
    retry: { type: 'integer' },
  },
  required: ['data'],
} as const;

/**
 * The OpenAPI 3.1 description of every route: the routes' own definitions, plus what every route
 * can answer whatever it is (401 without a valid token, 403 for a token without the route's
 * scope, which its `security` names; 500), and `/openapi.json` itself.
 */
export function openApiDocument(app: OpenAPIHono): Doc {
  const doc = app.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title: 'Hodei Jobs API',
      version: '0.1.0',
      description: 'Run scripts as jobs in ephemeral Docker containers, orchestrated by Temporal.',
    },
    security: [{ bearerAuth: [] }],
  });
  doc.paths = {
    ...doc.paths,
    '/openapi.json': {
      get: {
        summary: 'This description',
        responses: {
          200: { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } },
        },
      },
    },
  };
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(item as Record<string, Operation>)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
      op.responses ??= {};
      const open = Array.isArray(op.security) && op.security.length === 0;
      if (!open) {
        // The scope the route needs, as the token check decides it.
        const scope = requiredScope(method, path);
        op.security = [{ bearerAuth: [scope] }];
        op.responses['401'] ??= errorResponse('No valid API token (`Authorization: Bearer <token>`)');
        op.responses['403'] ??= errorResponse(`The API token lacks the \`${scope}\` scope`);
      }
      const { parameters, requestBody } = op as { parameters?: unknown[]; requestBody?: unknown };
      // Path, query, header and body values are validated: a bad one is a 400 in the one shape.
      if (requestBody || (parameters && parameters.length > 0)) {
        op.responses['400'] ??= errorResponse('A parameter or the body is invalid');
      }
      for (const response of Object.values(op.responses) as Array<{ content?: Record<string, { schema?: object }> }>) {
        const sse = response.content?.['text/event-stream'];
        // An event stream is described per event ({event, id, data}), as OpenAPI 3.2's
        // itemSchema does and as clients (and schemathesis) read it.
        if (sse)
          sse.schema = { ...SSE_EVENT, description: (sse.schema as { description?: string } | undefined)?.description };
      }
      if (requestBody) {
        op.responses['415'] ??= errorResponse('The body is not application/json');
      }
      op.responses['500'] ??= errorResponse('Internal error');
    }
  }
  return doc;
}
