import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';

const { temporal } = proto;
import type { Config } from '../domain/config.js';

const HealthSchema = z.object({ status: z.enum(['ok', 'unavailable']), detail: z.string().optional() });

const healthz = createRoute({
  method: 'get',
  path: '/healthz',
  summary: 'The API is up and reaches Temporal',
  security: [],
  responses: {
    200: { content: { 'application/json': { schema: HealthSchema } }, description: 'Healthy' },
    503: { content: { 'application/json': { schema: HealthSchema } }, description: 'Temporal unreachable' },
  },
});

const readyz = createRoute({
  method: 'get',
  path: '/readyz',
  summary: 'A job submitted now would run: a worker polls the job queue',
  security: [],
  responses: {
    200: { content: { 'application/json': { schema: HealthSchema } }, description: 'Ready' },
    503: { content: { 'application/json': { schema: HealthSchema } }, description: 'Not ready' },
  },
});

// A polling worker re-polls at least once a minute; a poller unseen for longer is gone.
const POLLER_FRESH_MS = 90_000;
const TIMEOUT_MS = 3_000;

export function healthApp({ client, config }: { client: Client; config: Config }) {
  const app = new OpenAPIHono();

  app.openapi(healthz, async (c) => {
    try {
      await client.connection.withDeadline(Date.now() + TIMEOUT_MS, () => client.workflowService.getSystemInfo({}));
      return c.json({ status: 'ok' as const }, 200);
    } catch (err) {
      return c.json({ status: 'unavailable' as const, detail: `temporal: ${(err as Error).message}` }, 503);
    }
  });

  // A worker polls only once its Docker engine answered and the worker image exists (it refuses
  // to start otherwise), so a fresh poller on both task types means a job can run now.
  app.openapi(readyz, async (c) => {
    try {
      for (const taskQueueType of [
        temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      ]) {
        const response = await client.connection.withDeadline(Date.now() + TIMEOUT_MS, () =>
          client.workflowService.describeTaskQueue({
            namespace: config.TEMPORAL_NAMESPACE,
            taskQueue: { name: config.HODEI_TASK_QUEUE },
            taskQueueType,
          }),
        );
        const fresh = (response.pollers ?? []).some((poller) => {
          const seconds = Number(poller.lastAccessTime?.seconds ?? 0);
          return Date.now() - seconds * 1000 < POLLER_FRESH_MS;
        });
        if (!fresh)
          return c.json({ status: 'unavailable' as const, detail: 'no worker is polling the job queue' }, 503);
      }
      return c.json({ status: 'ok' as const }, 200);
    } catch (err) {
      return c.json({ status: 'unavailable' as const, detail: `temporal: ${(err as Error).message}` }, 503);
    }
  });

  return app;
}
