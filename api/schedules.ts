import { randomUUID } from 'node:crypto';
import { createRoute, z } from '@hono/zod-openapi';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  type Client,
  type ScheduleDescription,
  type ScheduleOptionsAction,
  type ScheduleOverlapPolicy,
  type ScheduleSpec,
} from '@temporalio/client';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Config } from '../domain/config.js';
import { JobSpecSchema, type JobSpec } from '../domain/job-spec.js';
import { codecKeys } from '../domain/payload-codec.js';
import { resolveJobInput } from '../domain/resolve-job.js';
import {
  parseDuration,
  SCHEDULE_ID,
  SCHEDULE_ID_MESSAGE,
  SCHEDULE_LABEL,
  ScheduleCreateSchema,
  ScheduleUpdateSchema,
  type OverlapPolicy,
  type ScheduleTiming,
} from '../domain/schedule-spec.js';
import { RUN_JOB_WORKFLOW } from '../domain/workflow-type.js';
import { errorBody, errorResponse, invalidRequest, type ErrorIssue } from './errors.js';
import { jobStartOptions } from './job-start.js';
import { BadCursorError, CursorCodec } from './jobs-list.js';
import { decimalInt } from './params.js';
import { createRouter } from './router.js';
import { ScheduleViewSchema, toScheduleView } from './schedule-view.js';

export interface SchedulesDeps {
  client: Client;
  config: Config;
}

const IdParams = z.object({ id: z.string().regex(SCHEDULE_ID, SCHEDULE_ID_MESSAGE) });
const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { 'application/json': { schema } },
  description,
});

const createSchedule = createRoute({
  method: 'post',
  path: '/',
  summary: 'Create a schedule: a Temporal Schedule whose every fire starts a job',
  request: { body: { content: { 'application/json': { schema: ScheduleCreateSchema } }, required: true } },
  responses: {
    201: json(ScheduleViewSchema, 'The schedule'),
    400: errorResponse('Invalid timing or job spec (the issue names the field)'),
    409: errorResponse('A schedule with this id exists'),
    413: errorResponse('Body too large'),
  },
});

const ListQuerySchema = z.object({
  limit: decimalInt(1, 100)
    .default(20)
    .openapi({ description: 'Schedules per page (1-100, default 20).', default: 20 }),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'not a cursor from this API')
    .max(4096)
    .optional()
    .openapi({ description: '`nextCursor` of the previous page.' }),
});
const ScheduleListSchema = z.object({
  schedules: z.array(ScheduleViewSchema),
  nextCursor: z.string().optional().openapi({ description: 'Absent on the last page.' }),
});
const listSchedules = createRoute({
  method: 'get',
  path: '/',
  summary: 'Schedules, a page at a time',
  request: { query: ListQuerySchema },
  responses: { 200: json(ScheduleListSchema, 'A page of schedules'), 400: errorResponse('Bad cursor') },
});

const getSchedule = createRoute({
  method: 'get',
  path: '/{id}',
  summary: 'A schedule, its next fire times and its latest jobs',
  request: { params: IdParams },
  responses: { 200: json(ScheduleViewSchema, 'The schedule'), 404: errorResponse('No such schedule') },
});

const updateSchedule = createRoute({
  method: 'patch',
  path: '/{id}',
  summary: 'Change a schedule: each field given replaces its own (a job spec whole, secrets included)',
  request: {
    params: IdParams,
    body: { content: { 'application/json': { schema: ScheduleUpdateSchema } }, required: true },
  },
  responses: {
    200: json(ScheduleViewSchema, 'The schedule'),
    400: errorResponse('Invalid timing or job spec (the issue names the field)'),
    404: errorResponse('No such schedule'),
    413: errorResponse('Body too large'),
  },
});

const pauseRoute = (verb: 'pause' | 'unpause', summary: string) =>
  createRoute({
    method: 'post',
    path: `/{id}/${verb}`,
    summary,
    request: { params: IdParams },
    responses: { 200: json(ScheduleViewSchema, 'The schedule'), 404: errorResponse('No such schedule') },
  });
const pauseSchedule = pauseRoute('pause', 'Pause a schedule: no fire until unpaused (its note stays)');
const unpauseSchedule = pauseRoute('unpause', 'Unpause a schedule');
const triggerSchedule = createRoute({
  method: 'post',
  path: '/{id}/trigger',
  summary: 'Fire a schedule now, once (paused or not), under its overlap policy',
  request: { params: IdParams },
  responses: { 202: json(ScheduleViewSchema, 'The schedule; the job starts'), 404: errorResponse('No such schedule') },
});

const deleteSchedule = createRoute({
  method: 'delete',
  path: '/{id}',
  summary: 'Delete a schedule; jobs it started run on',
  request: { params: IdParams },
  responses: { 204: { description: 'Deleted' }, 404: errorResponse('No such schedule') },
});

/** Temporal's schedule spec for the API's timing. */
function temporalSpec(timing: ScheduleTiming): ScheduleSpec {
  const spec: ScheduleSpec = {};
  if (timing.cron !== undefined) spec.cronExpressions = Array.isArray(timing.cron) ? timing.cron : [timing.cron];
  if (timing.every !== undefined) spec.intervals = [{ every: parseDuration(timing.every) }];
  if (timing.timezone) spec.timezone = timing.timezone;
  if (timing.startAt) spec.startAt = new Date(timing.startAt);
  if (timing.endAt) spec.endAt = new Date(timing.endAt);
  if (timing.jitter) spec.jitter = parseDuration(timing.jitter);
  return spec;
}

const temporalOverlap = (overlap: OverlapPolicy) => overlap.toUpperCase() as ScheduleOverlapPolicy;

/** A schedule that is not one of this API's: not shown, as if absent. */
const isJobSchedule = (d: ScheduleDescription) => d.action.workflowType === RUN_JOB_WORKFLOW;

// A page token Temporal cannot read fails slowly (it retries UNKNOWN): bound the wait.
const LIST_TIMEOUT_MS = 10_000;
const LIST_QUERY_TAG = 'schedules';

export function schedulesApp({ client, config }: SchedulesDeps) {
  const app = createRouter();
  const cursors = new CursorCodec(codecKeys(config));

  /**
   * The start of a fire's job: the same as a submitted job's (`jobStartOptions`), with the label
   * `schedule: <id>`. Temporal appends the fire time to the workflow id: `<id>-2030-01-01T09:00:00Z`.
   */
  function jobAction(id: string, spec: JobSpec): { action: ScheduleOptionsAction } | { issues: ErrorIssue[] } {
    const labelled = JobSpecSchema.safeParse({ ...spec, labels: { ...spec.labels, [SCHEDULE_LABEL]: id } });
    if (!labelled.success) {
      return { issues: labelled.error.issues.map((i) => ({ path: ['job', ...i.path].join('.'), message: i.message })) };
    }
    // A fire starts its job at once: when it fires is the schedule's own timing (`spec`).
    if (labelled.data.startAt !== undefined) {
      return { issues: [{ path: 'job.startAt', message: "a schedule's job starts when it fires: set spec.startAt" }] };
    }
    const resolved = resolveJobInput(labelled.data, config);
    if ('issues' in resolved) return { issues: resolved.issues.map((i) => ({ ...i, path: `job.${i.path}` })) };
    return {
      action: {
        type: 'startWorkflow',
        workflowType: RUN_JOB_WORKFLOW,
        workflowId: id,
        ...jobStartOptions(resolved.input, config),
      },
    };
  }

  async function describe(id: string): Promise<ScheduleDescription> {
    try {
      const d = await client.schedule.getHandle(id).describe();
      if (isJobSchedule(d)) return d;
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
    throw new HTTPException(404, { message: `schedule ${id} not found` });
  }

  const view = async (id: string) => toScheduleView(client, await describe(id));

  /**
   * Temporal refuses a timing it cannot parse: a 400 naming it. The rest of a timing is checked
   * here first, so with a cron expression it is the expression (a field out of range…).
   */
  function refusedSpec(c: Context, err: unknown, timing: ScheduleTiming | undefined) {
    if (!(err instanceof TypeError)) throw err;
    const path = /time ?zone|location/i.test(err.message)
      ? 'spec.timezone'
      : timing?.cron !== undefined
        ? 'spec.cron'
        : 'spec';
    return invalidRequest(c, [{ path, message: err.message }]);
  }

  app.openapi(createSchedule, async (c) => {
    const body = c.req.valid('json');
    const id = body.id ?? randomUUID();
    const made = jobAction(id, body.job);
    if ('issues' in made) return invalidRequest(c, made.issues);
    try {
      await client.schedule.create({
        scheduleId: id,
        spec: temporalSpec(body.spec),
        action: made.action,
        policies: { overlap: temporalOverlap(body.overlap) },
        state: { paused: body.paused, ...(body.note ? { note: body.note } : {}) },
      });
    } catch (err) {
      if (err instanceof ScheduleAlreadyRunning)
        return c.json(errorBody('schedule_exists', `a schedule with id ${id} exists`), 409);
      return refusedSpec(c, err, body.spec);
    }
    c.header('Location', `/schedules/${id}`);
    return c.json(await view(id), 201);
  });

  app.openapi(listSchedules, async (c) => {
    const { limit, cursor } = c.req.valid('query');
    let nextPageToken: Buffer | undefined;
    try {
      nextPageToken = cursor ? cursors.decode(LIST_QUERY_TAG, cursor) : undefined;
    } catch (err) {
      if (err instanceof BadCursorError) return invalidRequest(c, [{ path: 'cursor', message: err.message }]);
      throw err;
    }
    const response = await client.connection.withDeadline(Date.now() + LIST_TIMEOUT_MS, () =>
      client.workflowService.listSchedules({
        namespace: config.TEMPORAL_NAMESPACE,
        maximumPageSize: limit,
        nextPageToken,
      }),
    );
    const described = await Promise.all(
      (response.schedules ?? []).map(async (entry) => {
        try {
          const d = await client.schedule.getHandle(entry.scheduleId!).describe();
          return isJobSchedule(d) ? await toScheduleView(client, d) : undefined;
        } catch (err) {
          // Listed, then deleted before the describe.
          if (err instanceof ScheduleNotFoundError) return undefined;
          throw err;
        }
      }),
    );
    const token = response.nextPageToken;
    return c.json(
      {
        schedules: described.filter((s) => s !== undefined),
        ...(token && token.length > 0 ? { nextCursor: cursors.encode(LIST_QUERY_TAG, token) } : {}),
      },
      200,
    );
  });

  app.openapi(getSchedule, async (c) => c.json(await view(c.req.valid('param').id), 200));

  app.openapi(updateSchedule, async (c) => {
    const { id } = c.req.valid('param');
    const body = c.req.valid('json');
    await describe(id);
    const made = body.job ? jobAction(id, body.job) : undefined;
    if (made && 'issues' in made) return invalidRequest(c, made.issues);
    try {
      await client.schedule.getHandle(id).update((prev) => ({
        ...prev,
        spec: body.spec ? temporalSpec(body.spec) : prev.spec,
        action: made ? made.action : prev.action,
        policies: { ...prev.policies, ...(body.overlap ? { overlap: temporalOverlap(body.overlap) } : {}) },
        state: {
          ...prev.state,
          ...(body.paused !== undefined ? { paused: body.paused } : {}),
          ...(body.note !== undefined ? { note: body.note } : {}),
        },
      }));
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) throw new HTTPException(404, { message: `schedule ${id} not found` });
      return refusedSpec(c, err, body.spec);
    }
    return c.json(await view(id), 200);
  });

  /** Pause and unpause keep the schedule's note (Temporal's pause patch would replace it). */
  const setPaused = async (id: string, paused: boolean) => {
    await describe(id);
    await client.schedule.getHandle(id).update((prev) => ({ ...prev, state: { ...prev.state, paused } }));
    return view(id);
  };
  app.openapi(pauseSchedule, async (c) => c.json(await setPaused(c.req.valid('param').id, true), 200));
  app.openapi(unpauseSchedule, async (c) => c.json(await setPaused(c.req.valid('param').id, false), 200));

  app.openapi(triggerSchedule, async (c) => {
    const { id } = c.req.valid('param');
    const d = await describe(id);
    await client.schedule.getHandle(id).trigger(d.policies.overlap);
    return c.json(await toScheduleView(client, d), 202);
  });

  app.openapi(deleteSchedule, async (c) => {
    const { id } = c.req.valid('param');
    await describe(id);
    try {
      await client.schedule.getHandle(id).delete();
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
    return c.body(null, 204);
  });

  return app;
}
