import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { JobView as Job, ScheduleCreate, ScheduleView } from '../../api-client/index.js';
import { api, authHeaders, getJob, logs, stack, waitForEnd } from '../support/api-client.js';
import { launchChromium } from '../support/browser.js';
import { hodei } from '../support/cli.js';
import { ROOT } from '../support/stack.js';
import { temporalCli } from '../support/temporal.js';
import { waitFor } from '../support/wait.js';

const RUN = randomUUID().slice(0, 8);
const sid = (what: string) => `t-${what}-${RUN}`;
const JSON_HEADERS = { 'content-type': 'application/json' };

async function create(body: ScheduleCreate): Promise<ScheduleView> {
  const res = await api('/schedules', { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(body) });
  const answer = (await res.json()) as ScheduleView;
  expect(res.status, JSON.stringify(answer)).toBe(201);
  return answer;
}

async function show(id: string): Promise<ScheduleView> {
  const res = await api(`/schedules/${id}`);
  expect(res.status).toBe(200);
  return (await res.json()) as ScheduleView;
}

const post = (id: string, verb: string) => api(`/schedules/${id}/${verb}`, { method: 'POST' });
const remove = (id: string) => api(`/schedules/${id}`, { method: 'DELETE' });

/** The jobs a schedule started, from `GET /jobs?label=schedule:<id>`. */
async function jobsOf(id: string): Promise<Job[]> {
  const res = await api(`/jobs?label=${encodeURIComponent(`schedule:${id}`)}&limit=100`);
  return ((await res.json()) as { jobs: Job[] }).jobs;
}

/** What the real `temporal` CLI says of a schedule. */
async function temporalDescribe(id: string) {
  return JSON.parse(await temporalCli(stack(), ['schedule', 'describe', '-s', id, '-o', 'json'])) as {
    info: { actionCount?: string; overlapSkipped?: string };
  };
}
const temporalScheduleIds = async () =>
  (
    JSON.parse((await temporalCli(stack(), ['schedule', 'list', '-o', 'json'])) || '[]') as Array<{
      scheduleId: string;
    }>
  ).map((s) => s.scheduleId);

describe.concurrent('schedules', () => {
  it('an every-2s schedule fires jobs that succeed and are listed; pause stops it, trigger fires once, delete removes it', async () => {
    const id = sid('every');
    const made = await create({ id, spec: { every: '2s' }, job: { script: 'echo tick', labels: { suite: RUN } } });
    expect(made).toMatchObject({ id, spec: { every: '2s' }, overlap: 'skip', paused: false });
    expect(made.job.labels).toEqual({ suite: RUN, schedule: id });
    expect(Date.parse(made.nextRuns[1]!) - Date.parse(made.nextRuns[0]!)).toBe(2000);

    // Fires, and each fire is an ordinary job, found by its label.
    const done = await waitFor(
      'two succeeded jobs of the schedule',
      async () => {
        const jobs = (await jobsOf(id)).filter((j) => j.state === 'SUCCEEDED');
        return jobs.length >= 2 ? jobs : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    for (const job of done) {
      // Temporal appends the fire time to the id: every job route takes it.
      expect(job.id).toMatch(new RegExp(`^${id}-\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$`));
      expect(job.labels).toMatchObject({ schedule: id, suite: RUN });
      expect((await getJob(job.id)).state).toBe('SUCCEEDED');
      expect(await logs(job.id)).toBe('tick\n');
    }
    const view = await show(id);
    expect(view.recentJobs.length).toBeGreaterThanOrEqual(2);
    const ids = view.recentJobs.map((j) => j.id);
    expect(ids, 'newest last').toEqual([...ids].sort());
    expect(await temporalScheduleIds()).toContain(id);

    // Paused: no more fires (counted by the temporal CLI, over more than two intervals).
    expect((await (await post(id, 'pause')).json()) as ScheduleView).toMatchObject({ paused: true });
    await sleep(1000);
    const pausedAt = Number((await temporalDescribe(id)).info.actionCount);
    await sleep(5000);
    expect(Number((await temporalDescribe(id)).info.actionCount)).toBe(pausedAt);

    // Trigger: one fire, paused or not.
    expect((await post(id, 'trigger')).status).toBe(202);
    await waitFor(
      'the triggered fire',
      async () => (Number((await temporalDescribe(id)).info.actionCount) === pausedAt + 1 ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    await sleep(3000);
    expect(Number((await temporalDescribe(id)).info.actionCount)).toBe(pausedAt + 1);
    const triggered = (await show(id)).recentJobs.at(-1)!;
    expect((await waitForEnd(triggered.id)).state).toBe('SUCCEEDED');

    // Deleted: gone from the API and from Temporal.
    expect((await remove(id)).status).toBe(204);
    expect((await api(`/schedules/${id}`)).status).toBe(404);
    await waitFor(
      'the schedule gone from temporal schedule list',
      async () => ((await temporalScheduleIds()).includes(id) ? undefined : true),
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    const listed = (await (await api('/schedules?limit=100')).json()) as { schedules: ScheduleView[] };
    expect(listed.schedules.map((s) => s.id)).not.toContain(id);
    // Its jobs stay.
    expect((await getJob(done[0]!.id)).state).toBe('SUCCEEDED');
  });

  it('overlap skip with a job longer than the interval never runs two jobs at once', async () => {
    const id = sid('skip');
    await create({ id, spec: { every: '1s' }, job: { script: 'sleep 3' }, overlap: 'skip' });
    await waitFor('three jobs started', async () => ((await jobsOf(id)).length >= 3 ? true : undefined), {
      timeoutMs: 90_000,
      intervalMs: 500,
    });
    expect((await remove(id)).status).toBe(204);
    const jobs = await Promise.all((await jobsOf(id)).map((j) => waitForEnd(j.id)));
    const spans = jobs
      .map((j) => ({ id: j.id, from: Date.parse(j.createdAt), to: Date.parse(j.finishedAt!) }))
      .sort((a, b) => a.from - b.from);
    for (let i = 1; i < spans.length; i += 1) {
      expect(spans[i]!.from, `${spans[i]!.id} started after ${spans[i - 1]!.id} ended`).toBeGreaterThanOrEqual(
        spans[i - 1]!.to,
      );
    }
    expect(jobs.every((j) => j.state === 'SUCCEEDED')).toBe(true);
  });

  it("a timezone'd cron's next runs are that zone's local times", async () => {
    const id = sid('tz');
    const zone = 'America/New_York';
    const made = await create({
      id,
      spec: { cron: '30 9 * * 1-5', timezone: zone },
      job: { script: 'true' },
      paused: true,
      note: 'weekday mornings',
    });
    expect(made).toMatchObject({
      spec: { cron: '30 9 * * 1-5', timezone: zone },
      paused: true,
      note: 'weekday mornings',
    });

    // Independently: every quarter hour of the next three weeks whose local time there is a weekday's 09:30.
    const local = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    const expected: string[] = [];
    const start = Math.ceil(Date.now() / 900_000) * 900_000;
    for (let t = start; expected.length < made.nextRuns.length; t += 900_000) {
      const parts = Object.fromEntries(local.formatToParts(t).map((p) => [p.type, p.value]));
      if (parts.hour === '09' && parts.minute === '30' && !['Sat', 'Sun'].includes(parts.weekday!))
        expected.push(new Date(t).toISOString());
    }
    expect(made.nextRuns.length).toBeGreaterThanOrEqual(5);
    expect(made.nextRuns).toEqual(expected);

    // PATCH: another zone moves the runs; the note and the pause stay.
    const res = await api(`/schedules/${id}`, {
      method: 'PATCH',
      headers: JSON_HEADERS,
      body: JSON.stringify({ spec: { cron: '30 9 * * 1-5', timezone: 'Asia/Tokyo' } }),
    });
    const patched = (await res.json()) as ScheduleView;
    expect(res.status).toBe(200);
    expect(patched).toMatchObject({ spec: { timezone: 'Asia/Tokyo' }, paused: true, note: 'weekday mornings' });
    expect(new Date(patched.nextRuns[0]!).getUTCHours()).toBe(0); // 09:30 in Tokyo is 00:30 UTC
    // A new job spec, validated as at creation; the schedule's label is kept.
    const rejob = await api(`/schedules/${id}`, {
      method: 'PATCH',
      headers: JSON_HEADERS,
      body: JSON.stringify({ job: { script: 'echo v2', labels: { v: '2' } }, overlap: 'buffer_one' }),
    });
    expect(rejob.status).toBe(200);
    expect((await rejob.json()) as ScheduleView).toMatchObject({
      overlap: 'buffer_one',
      job: { script: 'echo v2', labels: { v: '2', schedule: id } },
    });
    const bad = await api(`/schedules/${id}`, { method: 'PATCH', headers: JSON_HEADERS, body: '{"job":{}}' });
    expect(bad.status).toBe(400);

    // The temporal CLI changes the same schedule the API shows.
    await temporalCli(stack(), ['schedule', 'toggle', '-s', id, '--unpause', '--reason', 'unpaused by temporal']);
    expect(await show(id)).toMatchObject({ paused: false, note: 'unpaused by temporal' });
    expect((await remove(id)).status).toBe(204);
  });

  it('bad input is a 400 naming the field; a taken id a 409; an unknown one a 404', async () => {
    const job = { script: 'true' };
    const cases: Array<[unknown, string]> = [
      [{ spec: { every: '5s', cron: '* * * * *' }, job }, 'spec.cron'],
      [{ spec: {}, job }, 'spec.cron'],
      [{ spec: { cron: 'every day' }, job }, 'spec.cron'],
      [{ spec: { cron: '61 * * * *' }, job }, 'spec.cron'],
      [{ spec: { cron: '0 9 * * *', timezone: 'Mars/Olympus_Mons' }, job }, 'spec.timezone'],
      [{ spec: { every: '5 minutes' }, job }, 'spec.every'],
      [{ spec: { every: '5m', startAt: 'tomorrow' }, job }, 'spec.startAt'],
      [{ spec: { every: '5m' }, job: {} }, 'job.script'],
      [{ spec: { every: '5m' }, job: { script: 'true', env: { 'BAD-NAME': 'x' } } }, 'job.env.BAD-NAME'],
      [{ spec: { every: '5m' }, job: { script: 'true', env: { A: '1' }, secrets: { A: '2' } } }, 'job.secrets.A'],
      [{ spec: { every: '5m' }, job: { script: 'true', startAt: '2030-01-01T00:00:00Z' } }, 'job.startAt'],
      [{ spec: { every: '5m' }, job, overlap: 'sometimes' }, 'overlap'],
      [{ id: 'no spaces', spec: { every: '5m' }, job }, 'id'],
    ];
    await Promise.all(
      cases.map(async ([body, field]) => {
        const res = await api('/schedules', { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(body) });
        const answer = (await res.json()) as { error: { issues?: Array<{ path: string }> } };
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(
          answer.error.issues?.map((i) => i.path),
          JSON.stringify(body),
        ).toContain(field);
      }),
    );
    const id = sid('dup');
    await create({ id, spec: { every: '1h' }, job, paused: true });
    const again = await api('/schedules', {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ id, spec: { every: '1h' }, job }),
    });
    expect(again.status).toBe(409);
    expect((await remove(id)).status).toBe(204);
    for (const res of [
      await api(`/schedules/${sid('none')}`),
      await post(sid('none'), 'pause'),
      await post(sid('none'), 'trigger'),
      await remove(sid('none')),
      await api(`/schedules/${sid('none')}`, { method: 'PATCH', headers: JSON_HEADERS, body: '{"note":"x"}' }),
    ])
      expect(res.status).toBe(404);
  });

  it('a read token lists schedules but cannot change them; /openapi.json says which scope each route needs', async () => {
    const id = sid('scopes');
    await create({ id, spec: { every: '1h' }, job: { script: 'true' }, paused: true });
    const read = authHeaders(stack().scopedTokens.read);
    expect((await api(`/schedules/${id}`, { headers: read })).status).toBe(200);
    expect((await api('/schedules', { headers: read })).status).toBe(200);
    const body = JSON.stringify({ spec: { every: '1h' }, job: { script: 'true' } });
    for (const res of [
      await api('/schedules', { method: 'POST', headers: { ...read, ...JSON_HEADERS }, body }),
      await api(`/schedules/${id}/pause`, { method: 'POST', headers: read }),
      await api(`/schedules/${id}/trigger`, { method: 'POST', headers: read }),
      await api(`/schedules/${id}`, { method: 'DELETE', headers: read }),
    ])
      expect(res.status).toBe(403);
    const submitOnly = authHeaders(stack().scopedTokens.submit);
    expect((await api(`/schedules/${id}/unpause`, { method: 'POST', headers: submitOnly })).status).toBe(200);
    expect((await api(`/schedules/${id}`, { method: 'DELETE', headers: submitOnly })).status).toBe(204);

    const doc = (await (await api('/openapi.json')).json()) as {
      paths: Record<string, Record<string, { security: unknown }>>;
    };
    expect(doc.paths['/schedules']!.get!.security).toEqual([{ bearerAuth: ['read'] }]);
    expect(doc.paths['/schedules']!.post!.security).toEqual([{ bearerAuth: ['submit'] }]);
    expect(doc.paths['/schedules/{id}']!.get!.security).toEqual([{ bearerAuth: ['read'] }]);
    expect(doc.paths['/schedules/{id}']!.patch!.security).toEqual([{ bearerAuth: ['submit'] }]);
    expect(doc.paths['/schedules/{id}']!.delete!.security).toEqual([{ bearerAuth: ['submit'] }]);
    expect(doc.paths['/schedules/{id}/trigger']!.post!.security).toEqual([{ bearerAuth: ['submit'] }]);
  });

  it('secrets of a scheduled job reach its script, stay encrypted in Temporal and are never returned', async () => {
    const id = sid('secret');
    const secret = `s3cr3t-${randomUUID()}`;
    const made = await create({
      id,
      spec: { every: '1h' },
      job: { script: 'printf %s "$API_KEY" | sha256sum | cut -c1-64', secrets: { API_KEY: secret } },
      paused: true,
    });
    expect(made.job.secretNames).toEqual(['API_KEY']);
    expect(JSON.stringify(made)).not.toContain(secret);
    expect(JSON.stringify(await show(id))).not.toContain(secret);

    // Read without the codec: the temporal CLI's describe holds the action's input encrypted.
    const raw = await temporalCli(stack(), ['schedule', 'describe', '-s', id, '-o', 'json']);
    expect(raw).not.toContain(secret);
    expect(raw).not.toContain(Buffer.from(secret).toString('base64'));
    const input = (
      JSON.parse(raw) as {
        schedule: {
          action: { startWorkflow: { input: { payloads: Array<{ metadata: Record<string, string>; data: string }> } } };
        };
      }
    ).schedule.action.startWorkflow.input.payloads;
    expect(input.length).toBe(1);
    expect(Buffer.from(input[0]!.metadata.encoding!, 'base64').toString()).toBe('binary/encrypted');
    expect(Buffer.from(input[0]!.data, 'base64').toString('latin1')).not.toContain(secret);

    expect((await post(id, 'trigger')).status).toBe(202);
    const job = await waitFor('the triggered job', async () => (await show(id)).recentJobs.at(-1), {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    expect((await waitForEnd(job.id)).state).toBe('SUCCEEDED');
    expect(await logs(job.id)).toBe(`${createHash('sha256').update(secret).digest('hex')}\n`);
    expect((await remove(id)).status).toBe(204);
  });

  it('the hodei CLI creates, lists, shows, pauses, unpauses, triggers and deletes a schedule', async () => {
    const id = sid('cli');
    const created = await hodei(
      ['schedule', 'create', '--id', id, '--cron', '0 3 * * *', '--timezone', 'Europe/Madrid', '--paused', '-'],
      { stdin: 'echo from-cli\n' },
    );
    expect(created, created.stderr).toMatchObject({ code: 0, stdout: `${id}\n` });
    const list = await hodei(['schedule', 'list']);
    expect(list.stdout).toMatch(new RegExp(`^${id}\\s+0 3 \\* \\* \\* \\(Europe/Madrid\\)\\s+yes`, 'm'));
    expect((await hodei(['schedule', 'unpause', id])).code).toBe(0);
    expect((await hodei(['schedule', 'pause', id])).code).toBe(0);
    expect((await hodei(['schedule', 'trigger', id])).code).toBe(0);
    const job = await waitFor('the triggered job', async () => (await show(id)).recentJobs.at(-1), {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    expect((await waitForEnd(job.id)).state).toBe('SUCCEEDED');
    const shown = await hodei(['schedule', 'show', id]);
    expect(shown.stdout).toMatch(/^paused\s+true$/m);
    expect(shown.stdout).toContain(job.id);
    expect(JSON.parse((await hodei(['schedule', 'show', id, '--json'])).stdout)).toMatchObject({ id, paused: true });
    expect((await hodei(['schedule', 'delete', id])).code).toBe(0);
    const gone = await hodei(['schedule', 'show', id]);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain('404');
  });

  it('the web page lists schedules with their next runs, and its buttons pause and trigger', async () => {
    const id = sid('web');
    await create({ id, spec: { every: '1h' }, job: { script: 'echo web' } });
    // The page the API serves is built at set-up; rebuilt when web/ changed since (a no-op otherwise).
    await promisify(execFile)('bash', [path.join(ROOT, 'scripts/build-web.sh')]);
    const browser = await launchChromium();
    try {
      const context = await browser.newContext();
      await context.addInitScript(`sessionStorage.setItem('hodei.token', ${JSON.stringify(stack().apiToken)})`);
      const page = await context.newPage();
      await page.goto(`${stack().apiUrl}/#/schedules`);
      const row = page.locator(`tr[data-schedule-id="${id}"]`);
      await row.waitFor({ timeout: 30_000 });
      expect(await row.locator('.next-runs li').count()).toBeGreaterThan(0);
      await row.getByRole('button', { name: 'Pause' }).click();
      await row.getByRole('button', { name: 'Unpause' }).waitFor({ timeout: 15_000 });
      expect((await show(id)).paused).toBe(true);
      await row.getByRole('button', { name: 'Trigger' }).click();
      await row.locator('.recent-jobs a').first().waitFor({ timeout: 30_000 });
      const job = (await show(id)).recentJobs.at(-1)!;
      expect((await waitForEnd(job.id)).state).toBe('SUCCEEDED');
    } finally {
      await browser.close();
      await remove(id);
    }
  });
});
