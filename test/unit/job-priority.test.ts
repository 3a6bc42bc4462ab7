import type { WorkflowExecutionDescription } from '@temporalio/client';
import type { TypedSearchAttributes } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { jobStartOptions } from '../../api/job-start.js';
import { toJobView } from '../../api/job-view.js';
import { listQuery } from '../../api/jobs-list.js';
import { loadConfig } from '../../domain/config.js';
import { isRfc3339, JobSpecSchema } from '../../domain/job-spec.js';
import { PRIORITY_KEY } from '../../domain/job-state.js';
import { resolveJobInput } from '../../domain/resolve-job.js';

// Who runs first and when (issue 13): the spec's priority, fairness and startAt fields, what the
// API makes of them (Temporal Priority, start delay, the HodeiPriority search attribute) and the
// list filter.
const config = loadConfig({ HODEI_API_TOKENS: 'unit-test-token-0123456789', HODEI_INSTANCE_ID: 'unit' });

function issuesOf(spec: Record<string, unknown>): string[] {
  const parsed = JobSpecSchema.safeParse({ script: 'x', ...spec });
  if (!parsed.success) return parsed.error.issues.map((i) => i.path.join('.'));
  const resolved = resolveJobInput(parsed.data, config);
  return 'issues' in resolved ? resolved.issues.map((i) => i.path) : [];
}

function inputOf(spec: Record<string, unknown>) {
  const resolved = resolveJobInput(JobSpecSchema.parse({ script: 'x', ...spec }), config);
  if ('issues' in resolved) throw new Error(JSON.stringify(resolved.issues));
  return resolved.input;
}

describe('priority, fairness and startAt in the job spec', () => {
  it.each([
    [{ priority: 0 }, 'priority'],
    [{ priority: 6 }, 'priority'],
    [{ priority: 2.5 }, 'priority'],
    [{ priority: '1' }, 'priority'],
    [{ fairnessKey: '' }, 'fairnessKey'],
    [{ fairnessKey: 'é'.repeat(33) }, 'fairnessKey'],
    [{ fairnessKey: 'a\nb' }, 'fairnessKey'],
    [{ fairnessKey: 'a', fairnessWeight: 0 }, 'fairnessWeight'],
    [{ fairnessKey: 'a', fairnessWeight: -1 }, 'fairnessWeight'],
    [{ fairnessKey: 'a', fairnessWeight: 1001 }, 'fairnessWeight'],
    [{ fairnessWeight: 2 }, 'fairnessWeight'],
    [{ startAt: 'tomorrow' }, 'startAt'],
    [{ startAt: '2026-12-01T10:00:00' }, 'startAt'],
    [{ startAt: '2026-12-01' }, 'startAt'],
    [{ startAt: '2026-02-30T10:00:00Z' }, 'startAt'],
    [{ startAt: '2026-12-01T25:00:00Z' }, 'startAt'],
    [{ startAt: 1764583200000 }, 'startAt'],
    [{ startAt: '9999-12-31T00:00:00Z' }, 'startAt'],
  ])('refuses %j, naming the field', (spec, field) => {
    expect(issuesOf(spec)).toEqual([field]);
  });

  it('accepts the limits and resolves the defaults', () => {
    expect(issuesOf({ priority: 1, fairnessKey: 'é'.repeat(32), fairnessWeight: 1000 })).toEqual([]);
    expect(issuesOf({ priority: 5, fairnessKey: 'a', fairnessWeight: 0.001 })).toEqual([]);
    const plain = inputOf({});
    expect(plain.priority).toBe(3);
    expect(plain).not.toHaveProperty('fairnessKey');
    expect(plain).not.toHaveProperty('startAt');
  });

  it('takes RFC 3339 times with Z or an offset, normalised to UTC', () => {
    for (const ok of ['2026-12-01T10:00:00Z', '2026-12-01T10:00:00.123456+02:00', '2026-12-01t10:00:00z']) {
      expect(isRfc3339(ok), ok).toBe(true);
    }
    for (const bad of [
      '2026-12-01T10:00Z',
      '2026-13-01T10:00:00Z',
      '2026-12-01T10:00:00+2:00',
      ' 2026-12-01T10:00:00Z',
    ]) {
      expect(isRfc3339(bad), bad).toBe(false);
    }
    expect(inputOf({ startAt: '2026-12-01T12:00:00+02:00' }).startAt).toBe('2026-12-01T10:00:00.000Z');
  });
});

describe('jobStartOptions', () => {
  const now = Date.parse('2026-12-01T10:00:00Z');

  it('carries the priority and fairness as the workflow’s Temporal Priority and HodeiPriority', () => {
    const start = jobStartOptions(
      inputOf({ priority: 1, fairnessKey: 'tenant-a', fairnessWeight: 2.5 }),
      config,
      {},
      now,
    );
    expect(start.priority).toEqual({ priorityKey: 1, fairnessKey: 'tenant-a', fairnessWeight: 2.5 });
    expect((start.typedSearchAttributes as TypedSearchAttributes).get(PRIORITY_KEY)).toBe(1);
    expect(start).not.toHaveProperty('startDelay');
  });

  it('delays the start of a job whose startAt lies ahead, and only then', () => {
    const later = jobStartOptions(inputOf({ startAt: '2026-12-01T10:00:30Z' }), config, {}, now);
    expect(later.startDelay).toBe(30_000);
    expect(later.memo.startAt).toBe('2026-12-01T10:00:30.000Z');
    expect(later.priority).toEqual({ priorityKey: 3 });
    const past = jobStartOptions(inputOf({ startAt: '2026-12-01T09:00:00Z' }), config, {}, now);
    expect(past).not.toHaveProperty('startDelay');
  });
});

describe('the priority filter', () => {
  it('finds a priority by HodeiPriority; 3 also finds jobs from before priorities', () => {
    expect(listQuery({ label: [], priority: 1 })).toBe("WorkflowType = 'runJob' AND HodeiPriority = 1");
    expect(listQuery({ label: [], priority: 3 })).toBe(
      "WorkflowType = 'runJob' AND (HodeiPriority = 3 OR HodeiPriority IS NULL)",
    );
  });
});

describe('the job view of who runs first', () => {
  const now = Date.parse('2026-12-01T10:00:00Z');
  /** The parts of Temporal's describe the view reads. */
  const described = (info: Record<string, unknown>, memo: Record<string, unknown>, executionTime = new Date(now)) =>
    ({
      workflowId: 'job-1',
      runId: 'run-1',
      status: { name: 'RUNNING' },
      startTime: new Date(now - 1000),
      executionTime,
      memo: { name: 'n', image: 'i', labels: {}, state: 'QUEUED', ...memo },
      raw: { workflowExecutionInfo: info, pendingActivities: [], workflowExtendedInfo: {} },
    }) as unknown as WorkflowExecutionDescription;

  it('shows a job from before priorities at 3, without fairness or startAt', () => {
    const view = toJobView(described({}, {}), now);
    expect(view).toMatchObject({ priority: 3, state: 'QUEUED' });
    expect(view.fairnessKey).toBeUndefined();
    expect(view.fairnessWeight).toBeUndefined();
    expect(view.reason).toBeUndefined();
  });

  it("shows the workflow's own Priority, and a delayed job's start as its reason", () => {
    const startAt = '2026-12-01T10:05:00.000Z';
    const info = { priority: { priorityKey: 1, fairnessKey: 'tenant-a', fairnessWeight: 0 } };
    const view = toJobView(described(info, { startAt }, new Date(Date.parse(startAt) + 20)), now);
    expect(view).toMatchObject({ priority: 1, fairnessKey: 'tenant-a', fairnessWeight: 1, startAt });
    expect(view.reason).toBe(`starts at ${startAt}`);
    // Once the time has come, it queues like any job.
    expect(toJobView(described(info, { startAt }, new Date(Date.parse(startAt))), Date.parse(startAt) + 1).reason).toBe(
      undefined,
    );
  });
});
