import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { LABEL_INSTANCE } from '../../domain/container-labels.js';
import { APPEND_CHANNEL, LISTEN_APPLICATION_NAME } from '../../log-store/postgres-log-store.js';
import { clientFor, docker } from '../support/api-client.js';
import { adminQuery, createDatabase } from '../support/postgres.js';
import { openSse } from '../support/sse.js';
import { startStack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

const numbers = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('a whole stack on the PostgreSQL log store (real Temporal, Docker and PostgreSQL)', () => {
  it('follows a running job over SSE to its end event, and serves its text log, all from PostgreSQL', async () => {
    const db = await createDatabase(inject('postgresUrl'), 'hodei_stack');
    const own = await startStack({ capacity: 2, env: { HODEI_LOG_STORE: db.url } }).catch(async (err: unknown) => {
      await db.drop();
      throw err;
    });
    try {
      const { submit, logs, waitForState } = clientFor(() => own.info);
      const job = await submit({
        script: 'for i in $(seq 1 30); do echo "line $i"; sleep 0.2; done; sleep 0.5; echo oops >&2; exit 3',
      });
      await waitForState(job.id, ['RUNNING']);
      const sse = await openSse(`${own.info.apiUrl}/jobs/${job.id}/logs/stream`, { token: own.info.apiToken });
      expect(sse.status).toBe(200);
      // The API follows through one LISTEN connection on the database.
      const listening = await waitFor('the API to LISTEN', async () => {
        const rows = await adminQuery<{ n: number }>(
          db.url,
          'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND query = $2',
          [LISTEN_APPLICATION_NAME, `LISTEN ${APPEND_CHANNEL}`],
        );
        return rows[0]!.n > 0 ? rows[0]!.n : undefined;
      });
      expect(listening).toBe(1);
      await sse.closed;

      const lines = sse.lines();
      expect(lines.map((l) => l.seq)).toEqual(numbers(1, 31));
      expect(lines.slice(0, 30).map((l) => l.line)).toEqual(numbers(1, 30).map((n) => `line ${n}`));
      expect(lines[30]).toMatchObject({ stream: 'stderr', line: 'oops', attempt: 1 });
      expect(sse.events.filter((e) => !e.event).map((e) => e.id)).toEqual(numbers(1, 31).map(String));
      expect(sse.events.at(-1)?.event).toBe('end');
      expect(sse.end()).toEqual({ state: 'FAILED', exitCode: 3 });
      // Lines came live, while the job printed (1.5 s), not all at its end.
      expect(sse.arrivals.at(-1)! - sse.arrivals[0]!).toBeGreaterThan(500);

      expect(await logs(job.id)).toBe(
        [...numbers(1, 30).map((n) => `line ${n}`), 'oops'].map((l) => `${l}\n`).join(''),
      );
      // Stored in PostgreSQL, not in the embedded file.
      const [stored] = await adminQuery<{ n: number }>(
        db.url,
        'SELECT count(*)::int AS n FROM log_lines WHERE job_id = $1',
        [job.id],
      );
      expect(stored!.n).toBe(31);
      expect(existsSync(path.join(own.info.dataDir, 'logs.db'))).toBe(false);
    } finally {
      await own.stop();
      const left = await docker.listContainers({
        all: true,
        filters: { label: [`${LABEL_INSTANCE}=${own.info.instanceId}`] },
      });
      await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
      await db.drop();
    }
  });
});
