import { z } from 'zod';
import { JobSpecSchema } from './job-spec.js';

/**
 * A schedule's id: what `temporal schedule` commands take with `-s`. Letters, digits, `.`, `_`
 * and `-`, starting with a letter or digit, at most 100 characters, so a fire's job id (the id,
 * `-` and the fire time, which Temporal appends) stays a valid job id.
 */
export const SCHEDULE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
export const SCHEDULE_ID_MESSAGE = 'schedule ids are 1-100 of [A-Za-z0-9._-], starting with a letter or digit';

/** The label every job a schedule starts carries: `schedule: <id>`. */
export const SCHEDULE_LABEL = 'schedule';

/** How a fire that comes while the previous fire's job still runs is handled (Temporal's overlap policy). */
export const OVERLAP_POLICIES = ['skip', 'buffer_one', 'buffer_all', 'cancel_other', 'allow_all'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 } as const;
const DURATION = /^(?:\d+(?:ms|d|h|m|s))+$/;
const DURATION_PART = /(\d+)(ms|d|h|m|s)/g;

/** Milliseconds of a duration such as `30s`, `5m`, `1h30m`, `1d`, `500ms`. */
export function parseDuration(text: string): number {
  let ms = 0;
  for (const [, n, unit] of text.matchAll(DURATION_PART)) ms += Number(n) * UNIT_MS[unit as keyof typeof UNIT_MS];
  return ms;
}

/** A duration in the same notation, largest units first (`90000` → `1m30s`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let text = '';
  for (const [unit, size] of Object.entries(UNIT_MS)) {
    const n = Math.floor(rest / size);
    if (n > 0) text += `${n}${unit}`;
    rest -= n * size;
  }
  return text;
}

const MAX_DURATION_MS = 366 * UNIT_MS.d;
const duration = (what: string, minMs: number) =>
  z
    .string()
    .regex(DURATION, `${what} is a duration such as 30s, 5m, 1h30m or 1d`)
    .refine((text) => parseDuration(text) >= minMs, `${what} must be at least ${formatDuration(minMs)}`)
    .refine((text) => parseDuration(text) <= MAX_DURATION_MS, `${what} must be at most 366d`);

/** The zones this runtime knows (IANA), plus the UTC names it leaves out of the list. */
let zones: Set<string> | undefined;
const IANA_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)*$/;

/**
 * An IANA time zone name: one of `Intl.supportedValuesOf('timeZone')` or an alias of one the
 * runtime resolves (`US/Eastern`); not a bare offset such as `+02:00`.
 */
export function isTimeZone(name: string): boolean {
  zones ??= new Set([...Intl.supportedValuesOf('timeZone'), 'UTC', 'Etc/UTC', 'GMT', 'Etc/GMT']);
  if (zones.has(name)) return true;
  if (!IANA_NAME.test(name)) return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

// 5 fields (minute hour day-of-month month day-of-week) or 7 (second first, year last), or one
// of Temporal's @-names; Temporal itself parses the fields (an error is a 400 naming spec.cron).
const CRON =
  /^(?:@(?:yearly|annually|monthly|weekly|daily|midnight|hourly)|(?:\S+\s+){4}\S+|(?:\S+\s+){5}\S+|(?:\S+\s+){6}\S+)$/;
const cronExpression = z
  .string()
  .trim()
  .max(256)
  .regex(
    CRON,
    'a cron expression has 5 fields (minute hour day-of-month month day-of-week), 6 (… year) or 7 (second …)',
  )
  .refine((text) => !/^(?:CRON_)?TZ=/.test(text), 'give the time zone in spec.timezone, not in the expression');

// Years 1970-9999: what a protobuf timestamp holds, and no schedule needs earlier.
const LAST_TIME = Date.parse('9999-12-31T23:59:59Z');
const isoTime = z.iso
  .datetime({ offset: true, message: 'an RFC 3339 time such as 2030-01-01T09:00:00Z' })
  .refine((text) => Date.parse(text) >= 0 && Date.parse(text) <= LAST_TIME, 'a time between 1970 and 9999');

/** When a schedule fires: exactly one of `cron` and `every`. */
export const ScheduleTimingSchema = z
  .strictObject({
    /** Cron expression(s), Temporal's syntax, read in `timezone`; several: a fire at each one's times. */
    cron: z.union([cronExpression, z.array(cronExpression).min(1).max(10)]).optional(),
    /** A fixed interval (`30s`, `5m`, `1h`, `1d`), counted from the Unix epoch; at least 1s. */
    every: duration('every', 1000).optional(),
    /** IANA time zone the cron expressions are read in. Default: UTC. */
    timezone: z
      .string()
      .max(64)
      .refine(isTimeZone, 'unknown time zone (an IANA name such as Europe/Madrid)')
      .optional(),
    /** No fire before this time (RFC 3339). */
    startAt: isoTime.optional(),
    /** No fire after this time (RFC 3339). */
    endAt: isoTime.optional(),
    /** Each fire is delayed by a random time up to this duration (spreads load). Default: none. */
    jitter: duration('jitter', 0).optional(),
  })
  .superRefine((spec, ctx) => {
    if ((spec.cron === undefined) === (spec.every === undefined))
      ctx.addIssue({ code: 'custom', path: ['cron'], message: 'give exactly one of cron and every' });
    if (spec.startAt && spec.endAt && Date.parse(spec.startAt) >= Date.parse(spec.endAt))
      ctx.addIssue({ code: 'custom', path: ['endAt'], message: 'endAt must be after startAt' });
  });
export type ScheduleTiming = z.infer<typeof ScheduleTimingSchema>;

const note = z.string().max(1000);

/** `POST /schedules`: a job spec (the same schema as `POST /jobs`) and when to start it. */
export const ScheduleCreateSchema = z.strictObject({
  /** The schedule's id. Default: a random UUID. */
  id: z.string().regex(SCHEDULE_ID, SCHEDULE_ID_MESSAGE).optional(),
  spec: ScheduleTimingSchema,
  /** The job each fire starts, as `POST /jobs` takes it; it carries the label `schedule: <id>`. */
  job: JobSpecSchema,
  /** What a fire does while the previous fire's job still runs. Default: skip. */
  overlap: z.enum(OVERLAP_POLICIES).default('skip'),
  /** Created paused (no fire until unpaused). Default: false. */
  paused: z.boolean().default(false),
  /** A note for people (Temporal's schedule notes). */
  note: note.optional(),
});
export type ScheduleCreate = z.infer<typeof ScheduleCreateSchema>;

/** `PATCH /schedules/:id`: each field given replaces the schedule's own. */
export const ScheduleUpdateSchema = z.strictObject({
  spec: ScheduleTimingSchema.optional(),
  job: JobSpecSchema.optional(),
  overlap: z.enum(OVERLAP_POLICIES).optional(),
  paused: z.boolean().optional(),
  note: note.optional(),
});
export type ScheduleUpdate = z.infer<typeof ScheduleUpdateSchema>;
