import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createRoute, z } from '@hono/zod-openapi';
import type { Client, WorkflowExecutionDescription } from '@temporalio/client';
import { executionInfoFromRaw } from '@temporalio/client/lib/helpers.js';
import { LABEL_VALUE_MESSAGE, labelValueOk } from '../domain/job-spec.js';
import { DEFAULT_PRIORITY, LISTABLE_STATES, STATE_QUERIES } from '../domain/job-state.js';
import { RUN_JOB_WORKFLOW } from '../domain/workflow-type.js';
import { errorResponse } from './errors.js';
import { decimalInt } from './params.js';
import { JobViewSchema, toJobView } from './job-view.js';

const LABEL_FILTER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}:.{0,256}$/s;

export const ListQuerySchema = z.object({
  state: z
    .enum(LISTABLE_STATES as [string, ...string[]])
    .optional()
    .openapi({ description: 'Only jobs in this state (QUEUED includes jobs being provisioned).' }),
  label: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .transform((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]))
    .pipe(
      z
        .array(
          z
            .string()
            .regex(LABEL_FILTER, 'labels are key:value')
            .refine((filter) => labelValueOk(filter.slice(filter.indexOf(':') + 1)), LABEL_VALUE_MESSAGE),
        )
        .max(32),
    )
    .openapi({ description: 'key:value; repeat for jobs carrying every one of them.' }),
  priority: decimalInt(1, 5, 'Only jobs of this priority (3 includes jobs from before priorities existed).').optional(),
  limit: decimalInt(1, 100).default(20).openapi({ description: 'Jobs per page (1-100, default 20).', default: 20 }),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'not a cursor from this API')
    .max(4096)
    .optional()
    .openapi({ description: '`nextCursor` of the previous page.' }),
});
export type ListQuery = z.infer<typeof ListQuerySchema>;

export const JobListSchema = z.object({
  jobs: z.array(JobViewSchema),
  nextCursor: z.string().optional().openapi({ description: 'Absent on the last page.' }),
});

export const listJobsRoute = createRoute({
  method: 'get',
  path: '/',
  summary: 'Jobs, newest first (open ones by start, then ended ones by end), filtered by state, labels and priority',
  request: { query: ListQuerySchema },
  responses: {
    200: { content: { 'application/json': { schema: JobListSchema } }, description: 'A page of jobs' },
    400: errorResponse('Bad filter or cursor'),
  },
});

/** A string literal of Temporal's list query language. */
function literal(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** The visibility query for a filter; the same text works in `temporal workflow list --query`. */
export function listQuery(
  filter: Pick<ListQuery, 'state' | 'label'> & Partial<Pick<ListQuery, 'priority'>>,
  workflowType = RUN_JOB_WORKFLOW,
  stateQueries: Record<string, string> = STATE_QUERIES,
): string {
  const parts = [`WorkflowType = ${literal(workflowType)}`];
  if (filter.state) parts.push(stateQueries[filter.state]!);
  for (const label of filter.label) parts.push(`HodeiLabels = ${literal(label)}`);
  if (filter.priority !== undefined) {
    // Jobs from before priorities existed carry no HodeiPriority and ran at the default.
    parts.push(
      filter.priority === DEFAULT_PRIORITY
        ? `(HodeiPriority = ${DEFAULT_PRIORITY} OR HodeiPriority IS NULL)`
        : `HodeiPriority = ${filter.priority}`,
    );
  }
  return parts.join(' AND ');
}

/** Thrown for a cursor that is not one this API gave for this filter. */
export class BadCursorError extends Error {
  override name = 'BadCursorError';
}

/**
 * Signs and checks list cursors: a cursor carries Temporal's page token, a tag of the filter it
 * pages, and a MAC under a key derived from the installation's codec keys (shared by every API
 * replica; a cursor made under a previous key still passes). A forged or altered cursor is refused
 * at once, before Temporal sees it (Temporal would take seconds to refuse a token it cannot read).
 */
export class CursorCodec {
  private readonly keys: Buffer[];

  constructor(secrets: readonly Buffer[]) {
    if (secrets.length === 0) throw new Error('a cursor codec needs a key');
    this.keys = secrets.map((secret) => createHmac('sha256', secret).update('hodei list cursor v1').digest());
  }

  /** A page token from Temporal, tied to the query it pages through. */
  encode(query: string, token: Uint8Array): string {
    const payload = Buffer.from(
      JSON.stringify({ q: queryTag(query), t: Buffer.from(token).toString('base64') }),
    ).toString('base64url');
    return payload + mac(this.keys[0]!, payload);
  }

  decode(query: string, cursor: string): Buffer {
    const payload = cursor.slice(0, -MAC_CHARS);
    const given = cursor.slice(-MAC_CHARS);
    if (cursor.length <= MAC_CHARS || !this.keys.some((key) => sameText(mac(key, payload), given))) {
      throw new BadCursorError('not a cursor from this API');
    }
    const { q, t } = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { q: string; t: string };
    if (q !== queryTag(query)) throw new BadCursorError('the cursor belongs to another filter');
    return Buffer.from(t, 'base64');
  }
}

/** A MAC of 16 bytes, as 22 base64url characters at the cursor's end. */
const MAC_CHARS = 22;
const mac = (key: Buffer, payload: string) =>
  createHmac('sha256', key).update(payload).digest().subarray(0, 16).toString('base64url');

const sameText = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

const queryTag = (query: string) => createHash('sha256').update(query).digest('base64url').slice(0, 16);

// A token Temporal cannot read fails as UNKNOWN, which the client retries: bound the wait.
const LIST_TIMEOUT_MS = 10_000;

/**
 * One page of jobs from Temporal's visibility store, in its order, newest first: jobs still open
 * by start time, then ended jobs by end time (the order of the Web UI; the SQL visibility store
 * has no ORDER BY). The cursor wraps Temporal's next page token with a tag of the filter.
 */
export async function listJobs(client: Client, namespace: string, cursors: CursorCodec, q: ListQuery) {
  const { executions, nextCursor } = await listExecutions(client, namespace, cursors, listQuery(q), q);
  return { jobs: executions.map(toJobView), nextCursor };
}

/** One page of the workflows a visibility query finds (jobs, pipelines), with a signed cursor for the next. */
export async function listExecutions(
  client: Client,
  namespace: string,
  cursors: CursorCodec,
  query: string,
  page: { limit: number; cursor?: string },
): Promise<{ executions: WorkflowExecutionDescription[]; nextCursor?: string }> {
  const nextPageToken = page.cursor ? cursors.decode(query, page.cursor) : undefined;
  let response;
  try {
    response = await client.connection.withDeadline(Date.now() + LIST_TIMEOUT_MS, () =>
      client.workflowService.listWorkflowExecutions({ namespace, query, pageSize: page.limit, nextPageToken }),
    );
  } catch (err) {
    // A forged token inside a well-formed cursor: INVALID_ARGUMENT, UNKNOWN or the deadline.
    const code = (err as { code?: number }).code;
    if (nextPageToken && (code === 2 || code === 3 || code === 4))
      throw new BadCursorError('not a cursor from this API');
    throw err;
  }
  const converter = client.workflow.options.loadedDataConverter;
  const executions = await Promise.all(
    (response.executions ?? []).map(async (raw) => {
      const info = await executionInfoFromRaw(raw, converter, { workflowExecutionInfo: raw }, namespace);
      return info as unknown as WorkflowExecutionDescription;
    }),
  );
  const token = response.nextPageToken;
  return { executions, nextCursor: token && token.length > 0 ? cursors.encode(query, token) : undefined };
}
