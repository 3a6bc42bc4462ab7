import { describe, expect, it } from 'vitest';
import { calendarToCron, scheduledJob } from '../../api/schedule-view.js';
import {
  formatDuration,
  isTimeZone,
  parseDuration,
  ScheduleCreateSchema,
  ScheduleTimingSchema,
} from '../../domain/schedule-spec.js';

const issuePaths = (body: unknown) => {
  const parsed = ScheduleCreateSchema.safeParse(body);
  return parsed.success ? [] : parsed.error.issues.map((i) => i.path.join('.'));
};

describe('schedule timing', () => {
  it('reads and writes durations', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(parseDuration('500ms')).toBe(500);
    for (const text of ['2s', '5m', '1h30m', '1d2h', '1s500ms']) expect(formatDuration(parseDuration(text))).toBe(text);
  });

  it('knows IANA zones and their aliases, not offsets or made-up names', () => {
    for (const zone of ['UTC', 'Europe/Madrid', 'America/New_York', 'Asia/Kolkata', 'US/Eastern'])
      expect(isTimeZone(zone), zone).toBe(true);
    for (const zone of ['Mars/Olympus_Mons', '+02:00', 'Europe/Nowhere', ''])
      expect(isTimeZone(zone), zone).toBe(false);
  });

  it('takes exactly one of cron and every, and names the bad field', () => {
    const job = { script: 'true' };
    expect(ScheduleTimingSchema.safeParse({ every: '5m' }).success).toBe(true);
    expect(ScheduleTimingSchema.safeParse({ cron: ['0 9 * * 1-5', '@daily'], timezone: 'Europe/Madrid' }).success).toBe(
      true,
    );
    expect(issuePaths({ spec: {}, job })).toEqual(['spec.cron']);
    expect(issuePaths({ spec: { every: '1m', cron: '* * * * *' }, job })).toEqual(['spec.cron']);
    expect(issuePaths({ spec: { every: '500ms' }, job })).toEqual(['spec.every']);
    expect(issuePaths({ spec: { cron: 'TZ=UTC 0 9 * * *' }, job })).toEqual(['spec.cron']);
    expect(
      issuePaths({ spec: { every: '1h', startAt: '2030-01-02T00:00:00Z', endAt: '2030-01-01T00:00:00Z' }, job }),
    ).toEqual(['spec.endAt']);
    expect(issuePaths({ spec: { every: '1h' }, job: { script: '' } })).toEqual(['job.script']);
    expect(issuePaths({ id: '-x', spec: { every: '1h' }, job })).toEqual(['id']);
  });
});

describe('schedule view', () => {
  it("writes Temporal's calendars back as cron text", () => {
    const all = (min: number, max: number) => [{ start: min, end: max, step: 1 }];
    const base = {
      second: [{ step: 1 }],
      minute: [{ start: 30, end: 30, step: 1 }],
      hour: [{ start: 9, end: 9, step: 1 }],
      dayOfMonth: all(1, 31),
      month: all(1, 12),
      dayOfWeek: [{ start: 1, end: 5, step: 1 }],
    };
    expect(calendarToCron(base)).toBe('30 9 * * 1-5');
    expect(calendarToCron({ ...base, minute: [{ end: 59, step: 15 }], month: [{ start: 1 }, { start: 6 }] })).toBe(
      '0-59/15 9 * 1,6 1-5',
    );
    expect(calendarToCron({ ...base, second: [{ start: 10 }], year: [{ start: 2030 }] })).toBe('10 30 9 * * 1-5 2030');
    expect(calendarToCron({ ...base, dayOfWeek: [{ end: 6, step: 1 }], comment: 'mornings' })).toBe(
      '30 9 * * * #mornings',
    );
  });

  it("shows a scheduled job's secret names, never their values", () => {
    const view = scheduledJob({
      script: 'true',
      name: 'true',
      image: 'img',
      env: {},
      secrets: { API_KEY: 'hunter2' },
      timeoutSeconds: 60,
      cancelGraceSeconds: 1,
      labels: { schedule: 's' },
      resources: { cpus: 1, memoryMb: 64, pidsLimit: 64, scratchMb: 16 },
      retries: 0,
      infraRetries: 2,
      hostLossSeconds: 30,
      cleanupDeadlineSeconds: 60,
    });
    expect(view.secretNames).toEqual(['API_KEY']);
    expect(JSON.stringify(view)).not.toContain('hunter2');
    expect(view).not.toHaveProperty('hostLossSeconds');
  });
});
