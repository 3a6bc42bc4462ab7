import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../domain/config.js';
import { LISTABLE_STATES } from '../domain/job-state.js';
import { listQuery } from './jobs-list.js';

const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics of the API and of the jobs Temporal holds',
  responses: {
    200: { content: { 'text/plain': { schema: z.string() } }, description: 'Prometheus text format 0.0.4' },
  },
});

const COUNT_TIMEOUT_MS = 5_000;

/**
 * The API's metrics: jobs by state, counted in Temporal's visibility store at scrape time (so
 * every API replica reports the same numbers and nothing is lost on restart), and its own HTTP
 * traffic. Worker-side metrics (queue wait, provisioning, run time, containers, log bytes) are
 * on the worker's `HODEI_WORKER_METRICS_PORT`.
 */
export function createMetrics({ client, config }: { client: Client; config: Config }) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'hodei_api_' });
  new Gauge({
    name: 'hodei_jobs',
    help: 'Jobs Temporal holds, by state (ended jobs within retention; PROVISIONING counts as QUEUED)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const counts = await Promise.all(
        LISTABLE_STATES.map((state) =>
          client.connection.withDeadline(Date.now() + COUNT_TIMEOUT_MS, () =>
            client.workflowService.countWorkflowExecutions({
              namespace: config.TEMPORAL_NAMESPACE,
              query: listQuery({ state, label: [] }),
            }),
          ),
        ),
      );
      LISTABLE_STATES.forEach((state, i) => this.set({ state }, Number(counts[i]!.count ?? 0)));
    },
  });
  const requests = new Counter({
    name: 'hodei_http_requests_total',
    help: 'HTTP requests answered by the API',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'hodei_http_request_duration_seconds',
    help: 'Time to answer an HTTP request (to the first byte of a streamed body)',
    labelNames: ['method', 'route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });

  /** Counts every request by its route pattern (never the raw path: ids would explode the labels). */
  const middleware: MiddlewareHandler = async (c, next) => {
    const started = performance.now();
    await next();
    const last = routePath(c, -1);
    const route = last && !last.endsWith('*') ? last : 'unmatched';
    requests.inc({ method: c.req.method, route, status: String(c.res.status) });
    duration.observe({ method: c.req.method, route }, (performance.now() - started) / 1000);
  };

  const app = new OpenAPIHono();
  app.openapi(metricsRoute, async (c) => {
    const text = await registry.metrics();
    return c.text(text, 200, { 'Content-Type': registry.contentType });
  });

  return { registry, middleware, app };
}
