import { z } from '@hono/zod-openapi';
import type { Client, ScheduleDescription } from '@temporalio/client';
import type proto from '@temporalio/proto';
import type { JobInput } from '../domain/job-spec.js';
import { JOB_STATES } from '../domain/job-state.js';
import { formatDuration, OVERLAP_POLICIES } from '../domain/schedule-spec.js';
import { describeJob } from './job-view.js';

type RawCalendar = proto.temporal.api.schedule.v1.IStructuredCalendarSpec;
type RawRange = proto.temporal.api.schedule.v1.IRange;

/** A job a schedule started, newest last. */
const RecentJobSchema = z.object({
  id: z.string(),
  state: z.enum(JOB_STATES),
  startedAt: z.string().optional(),
});

/**
 * The job a schedule's fires start: its job spec as resolved at creation (defaults filled in, the
 * label `schedule: <id>` added), with the secrets' names only, never their values.
 */
export const ScheduledJobSchema = z
  .object({
    script: z.string(),
    name: z.string(),
    image: z.string(),
    env: z.record(z.string(), z.string()),
    secretNames: z.array(z.string()),
    timeoutSeconds: z.number().int(),
    cancelGraceSeconds: z.number().int(),
    labels: z.record(z.string(), z.string()),
    resources: z.object({
      cpus: z.number(),
      memoryMb: z.number().int(),
      pidsLimit: z.number().int(),
      scratchMb: z.number().int(),
    }),
    retries: z.number().int(),
    infraRetries: z.number().int(),
  })
  .catchall(z.unknown())
  .openapi('ScheduledJob');

/**
 * When a schedule fires, as Temporal holds it: cron expressions are shown as Temporal keeps them
 * (numbers, so `MON-FRI` reads `1-5`), which also shows a change made with `temporal schedule update`.
 */
const ScheduleTimingViewSchema = z.object({
  cron: z.union([z.string(), z.array(z.string())]).optional(),
  every: z.string().optional(),
  timezone: z.string().optional(),
  startAt: z.string().optional(),
  endAt: z.string().optional(),
  jitter: z.string().optional(),
});

export const ScheduleViewSchema = z
  .object({
    id: z.string(),
    spec: ScheduleTimingViewSchema,
    job: ScheduledJobSchema,
    overlap: z.enum([...OVERLAP_POLICIES, 'terminate_other']),
    paused: z.boolean(),
    note: z.string().optional(),
    createdAt: z.string(),
    nextRuns: z.array(z.string()).openapi({ description: 'The next fire times (ISO 8601, UTC), soonest first.' }),
    recentJobs: z.array(RecentJobSchema).openapi({ description: 'Jobs of the latest fires, newest last.' }),
  })
  .openapi('Schedule');
export type ScheduleView = z.infer<typeof ScheduleViewSchema>;

/** A field's cron text: `*` for its whole range, else its ranges (`1-5`, `0-59/15`, `9`) joined by commas. */
function cronField(ranges: RawRange[] | null | undefined, min: number, max: number): string {
  const list = (ranges ?? []).map((r) => {
    const start = r.start ?? 0;
    return { start, end: Math.max(r.end ?? 0, start), step: r.step || 1 };
  });
  if (list.length === 0) return '*';
  if (list.length === 1 && list[0]!.start === min && list[0]!.end === max && list[0]!.step === 1) return '*';
  return list
    .map(({ start, end, step }) =>
      start === end ? `${start}` : step === 1 ? `${start}-${end}` : `${start}-${end}/${step}`,
    )
    .join(',');
}

/**
 * A calendar as Temporal's cron text: 5 fields (minute hour day-of-month month day-of-week), a 6th
 * (year) when it has one, and a 7-field form (second first) when it fires at other seconds than 0.
 */
export function calendarToCron(calendar: RawCalendar): string {
  const seconds = cronField(calendar.second, 0, 59);
  const fields = [
    cronField(calendar.minute, 0, 59),
    cronField(calendar.hour, 0, 23),
    cronField(calendar.dayOfMonth, 1, 31),
    cronField(calendar.month, 1, 12),
    cronField(calendar.dayOfWeek, 0, 6),
  ];
  const year = calendar.year?.length ? cronField(calendar.year, 0, 0) : undefined;
  const text = seconds === '0' ? [...fields, ...(year ? [year] : [])] : [seconds, ...fields, year ?? '*'];
  return `${text.join(' ')}${calendar.comment ? ` #${calendar.comment}` : ''}`;
}

/** The job view of a schedule's action (its workflow input), secret values left out. */
export function scheduledJob(input: JobInput): z.infer<typeof ScheduledJobSchema> {
  // Settings the API filled in (not part of a job spec) stay out, as do the secrets' values.
  const rest: Record<string, unknown> = { ...input };
  for (const key of ['secrets', 'hostLossSeconds', 'cleanupDeadlineSeconds', 'hostWithState', 'hostStops'])
    delete rest[key];
  return { ...(rest as Omit<JobInput, 'secrets'>), secretNames: Object.keys(input.secrets ?? {}) };
}

/** A schedule as the API shows it, from Temporal's describe; the recent jobs' states from theirs. */
export async function toScheduleView(client: Client, d: ScheduleDescription): Promise<ScheduleView> {
  const raw = d.raw.schedule?.spec;
  const crons = (raw?.structuredCalendar ?? []).map(calendarToCron);
  const interval = d.spec.intervals?.[0];
  const recent = await Promise.all(
    d.info.recentActions.map(async (action) => {
      const job = await describeJob(client, action.action.workflow.workflowId);
      return job && { id: job.id, state: job.state, ...(job.startedAt ? { startedAt: job.startedAt } : {}) };
    }),
  );
  const spec: ScheduleView['spec'] = {};
  if (crons.length > 0) spec.cron = crons.length === 1 ? crons[0]! : crons;
  if (interval) spec.every = formatDuration(interval.every);
  if (d.spec.timezone) spec.timezone = d.spec.timezone;
  if (d.spec.startAt) spec.startAt = d.spec.startAt.toISOString();
  if (d.spec.endAt) spec.endAt = d.spec.endAt.toISOString();
  if (d.spec.jitter) spec.jitter = formatDuration(d.spec.jitter);
  return {
    id: d.scheduleId,
    spec,
    job: scheduledJob(d.action.args?.[0] as JobInput),
    overlap: (d.policies.overlap ?? 'SKIP').toLowerCase() as ScheduleView['overlap'],
    paused: d.state.paused,
    ...(d.state.note ? { note: d.state.note } : {}),
    createdAt: d.info.createdAt.toISOString(),
    nextRuns: d.info.nextActionTimes.map((t) => t.toISOString()),
    recentJobs: recent.filter((job) => job !== undefined),
  };
}
