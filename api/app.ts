import { OpenAPIHono } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from 'pino';
import type { Config } from '../domain/config.js';
import { MAX_SUBMIT_BYTES } from '../domain/job-spec.js';
import type { LogStore } from '../log-store/log-store.js';
import type { ArtifactStore } from '../artifact-store/artifact-store.js';
import { DataDirArtifactStore } from '../artifact-store/data-dir-artifact-store.js';
import { artifactsApp } from './artifacts.js';
import { requireToken, type ApiToken } from './auth.js';
import { createMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { errorBody, onError } from './errors.js';
import { healthApp } from './health.js';
import { jobsApp } from './jobs.js';
import { logsApp } from './logs.js';
import { schedulesApp } from './schedules.js';
import { pipelinesApp } from './pipelines.js';
import { strictUtf8Body } from './strict-body.js';
import { webApp } from './web.js';

export interface AppDeps {
  client: Client;
  logStore: LogStore;
  config: Config;
  logger: Logger;
  /** The accepted API tokens, as hashes with their scopes (`apiTokens(config)`). */
  tokens: readonly ApiToken[];
  /** Aborted when the process shuts down: live log streams end with a `shutdown` event. */
  shutdown?: AbortSignal;
  /** The built web page's directory (default `WEB_DIST`, where set-up builds it). */
  dist?: string;
  /** Where job artifacts are read (`HODEI_ARTIFACT_STORE`); default: the data dir's. */
  artifactStore?: ArtifactStore;
}

/** The HTTP API, testable with `app.request(...)` and no open port. */
export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono();
  const metrics = createMetrics(deps);
  app.use('*', metrics.middleware);
  // The web page and its assets are public (it asks for a token and sends it on every API call);
  // registered before the token check, so their handlers answer first.
  app.route('/', webApp(deps));
  app.use('*', requireToken(deps.tokens));
  // A schedule's body holds a job spec: the same limit and UTF-8 check as a submit.
  for (const path of ['/jobs', '/schedules', '/schedules/*', '/pipelines']) {
    app.use(
      path,
      bodyLimit({
        maxSize: MAX_SUBMIT_BYTES,
        onError: (c) => c.json(errorBody('payload_too_large', `request body over ${MAX_SUBMIT_BYTES} bytes`), 413),
      }),
      strictUtf8Body(),
    );
  }
  app.route('/', healthApp(deps));
  app.route('/', metrics.app);
  app.route('/jobs', jobsApp(deps));
  app.route('/schedules', schedulesApp(deps));
  app.route(
    '/jobs',
    artifactsApp({
      client: deps.client,
      artifactStore: deps.artifactStore ?? DataDirArtifactStore.inDataDir(deps.config.HODEI_DATA_DIR),
    }),
  );
  app.route('/jobs', logsApp({ ...deps, onError: (err) => deps.logger.error({ err }, 'log tail failed') }));
  app.route('/pipelines', pipelinesApp(deps));
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer' });
  app.get('/openapi.json', (c) => c.json(openApiDocument(app), 200));
  app.notFound((c) => c.json(errorBody('not_found', `no route ${c.req.method} ${c.req.path}`), 404));
  app.onError((err, c) => onError(err, c, (e) => deps.logger.error({ err: e }, 'request failed')));
  return app;
}
