import { createHash } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { z } from 'zod';
import { isTerminal, type JobState } from '../domain/job-state.js';
import type { JobSpec, ListQuery, ScheduleCreate, ScheduleView } from '../api-client/index.js';
import { ApiError, HodeiClient, type Job } from './client.js';
import { printStateWhenEnded, printTable } from './output.js';
import { addPipelineCommands } from './pipeline-commands.js';

/** The CLI's own settings (it is an API client: none of the platform's settings apply). */
const CliEnvSchema = z.object({
  /** API base URL. */
  HODEI_URL: z.string().url().optional(),
  /** API token. Default: the token `npm start` keeps in the data dir. */
  HODEI_TOKEN: z.string().min(1).optional(),
  HODEI_DATA_DIR: z.string().min(1).optional(),
  HODEI_API_PORT: z.coerce.number().int().min(1).max(65535).optional(),
});
type CliEnv = z.infer<typeof CliEnvSchema>;
const ROOT = path.resolve(import.meta.dirname, '..');

/** The exit code `submit --follow` ends with: the script's own, or a conventional one. */
export function exitCodeOf(job: { state: JobState; exitCode?: number }): number {
  switch (job.state) {
    case 'SUCCEEDED':
      return 0;
    case 'TIMED_OUT':
      return 124;
    case 'CANCELLED':
      return 130;
    default:
      return job.exitCode !== undefined && job.exitCode !== 0 ? job.exitCode : 1;
  }
}

function defaultToken(env: CliEnv): string | undefined {
  if (env.HODEI_TOKEN) return env.HODEI_TOKEN;
  for (const dir of [env.HODEI_DATA_DIR, path.join(ROOT, 'data')]) {
    if (!dir) continue;
    try {
      return readFileSync(path.join(dir, 'api-token'), 'utf8').trim();
    } catch {
      // Not there: try the next place.
    }
  }
  return undefined;
}

const keyValue =
  (sep: string) =>
  (value: string, previous: Record<string, string> = {}): Record<string, string> => {
    const at = value.indexOf(sep);
    if (at <= 0) throw new InvalidArgumentError(`expected NAME${sep}VALUE, got "${value}"`);
    return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
  };

/**
 * `--secret NAME=VALUE`, or `--secret NAME` for the value of the caller's own variable NAME
 * (which keeps the value out of the shell history and the process list).
 */
const secretOption = (value: string, previous: Record<string, string> = {}): Record<string, string> => {
  const at = value.indexOf('=');
  if (at === 0) throw new InvalidArgumentError(`expected NAME or NAME=VALUE, got "${value}"`);
  if (at > 0) return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
  const fromEnv = process.env[value];
  if (fromEnv === undefined)
    throw new InvalidArgumentError(`--secret ${value}: no variable ${value} in this environment`);
  return { ...previous, [value]: fromEnv };
};

const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
};

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A spinner on stderr while the job waits, only on a terminal. */
function spinner(): { update(text: string): void; stop(): void } {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let text = '';
  let i = 0;
  const timer = setInterval(() => process.stderr.write(`\r${frames[(i += 1) % frames.length]} ${text}\x1b[K`), 80);
  return {
    update: (t) => (text = t),
    stop: () => {
      clearInterval(timer);
      process.stderr.write('\r\x1b[K');
    },
  };
}

function client(command: Command): HodeiClient {
  const opts = command.optsWithGlobals<{ url: string; token?: string }>();
  return new HodeiClient(opts.url.replace(/\/+$/, ''), opts.token);
}

/** Waits out QUEUED and PROVISIONING with a spinner (on a terminal), then returns the job. */
async function waitUntilStarted(api: HodeiClient, id: string): Promise<void> {
  const spin = spinner();
  try {
    for (;;) {
      const job = await api.job(id);
      if (job.state !== 'QUEUED' && job.state !== 'PROVISIONING') return;
      spin.update(`${id} ${job.state}${job.reason ? ` (${job.reason})` : ''}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    spin.stop();
  }
}

/** Prints the job's output as it comes (stdout lines to stdout, the rest to stderr) until it ends. */
async function followLogs(api: HodeiClient, id: string): Promise<Job> {
  if (process.stderr.isTTY) await waitUntilStarted(api, id);
  await api.follow(id, (event) => {
    if (event.stream === 'stdout') process.stdout.write(`${event.line}\n`);
    else process.stderr.write(event.stream === 'system' ? `[hodei] ${event.line}\n` : `${event.line}\n`);
  });
  return api.job(id);
}

function describe(job: Job): string {
  const rows: Array<[string, string | number | undefined]> = [
    ['id', job.id],
    ['name', job.name],
    ['state', job.state],
    ['exit code', job.exitCode],
    ['reason', job.reason],
    ['image', job.image],
    [
      'labels',
      Object.entries(job.labels ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(', ') || undefined,
    ],
    ['created', job.createdAt],
    ['started', job.startedAt],
    ['finished', job.finishedAt],
    ['host', job.host],
    ['attempt', job.attempt],
    ['priority', job.priority],
    ['fairness', job.fairnessKey === undefined ? undefined : `${job.fairnessKey} (weight ${job.fairnessWeight ?? 1})`],
    ['start at', job.startAt],
    ['concurrency', job.concurrency && `${job.concurrency.key} (limit ${job.concurrency.limit})`],
    [
      'usage',
      job.usage &&
        `${job.usage.cpuSeconds.toFixed(2)} s CPU, ${(job.usage.maxMemoryBytes / 2 ** 20).toFixed(1)} MiB peak memory`,
    ],
    [
      'artifacts',
      job.artifacts &&
        (job.artifacts.skipped ??
          `${job.artifacts.count} file(s), ${job.artifacts.bytes} bytes${job.artifacts.truncated ? ' (truncated)' : ''}`),
    ],
  ];
  return rows
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k.padEnd(10)} ${v}`)
    .join('\n');
}

/** When a schedule fires: `every 5m`, or its cron expressions and their zone. */
function scheduleTiming(s: ScheduleView): string {
  const timing = s.spec.every ? `every ${s.spec.every}` : [s.spec.cron ?? []].flat().join('; ');
  return `${timing}${s.spec.timezone ? ` (${s.spec.timezone})` : ''}`;
}

/** A schedule as `hodei schedule show` prints it. */
function describeSchedule(s: ScheduleView): string {
  const rows: Array<[string, string | undefined]> = [
    ['id', s.id],
    ['when', scheduleTiming(s)],
    ['overlap', s.overlap],
    ['paused', String(s.paused)],
    ['note', s.note],
    ['job', s.job.name],
    ['secrets', s.job.secretNames.join(', ') || undefined],
    ['next runs', s.nextRuns.slice(0, 5).join(', ') || undefined],
    ['recent', s.recentJobs.map((j) => `${j.id} ${j.state}`).join('\n           ') || undefined],
  ];
  return rows
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k.padEnd(10)} ${v}`)
    .join('\n');
}

/** `hodei schedule …`: Temporal Schedules whose every fire starts a job. */
function scheduleCommands(program: Command): void {
  const schedule = program.command('schedule').description('Schedules: a job started by cron or at an interval');

  schedule
    .command('create')
    .description(
      'Create a schedule of the script in FILE (- for stdin) from flags, or of a whole POST /schedules body with --json',
    )
    .argument('[file]', 'script file, or - for stdin')
    .option('--json <FILE>', 'the POST /schedules body as JSON (- for stdin); the other flags are then not used')
    .option('--id <id>', 'schedule id (default: a random UUID)')
    .option('--cron <expr>', 'cron expression, repeatable (Temporal syntax)', (v: string, p: string[] = []) => [
      ...p,
      v,
    ])
    .option('--every <duration>', 'fixed interval: 30s, 5m, 1h, 1d')
    .option('--timezone <zone>', 'IANA time zone the cron expressions are read in')
    .option('--overlap <policy>', 'skip | buffer_one | buffer_all | cancel_other | allow_all (default skip)')
    .option('--paused', 'create it paused')
    .option('--note <text>', 'a note for people')
    .option('-e, --env <NAME=VALUE>', 'environment variable (repeatable)', keyValue('='))
    .option('--secret <NAME[=VALUE]>', 'secret env var; NAME alone takes $NAME (repeatable)', secretOption)
    .option('-i, --image <image>', 'image to run in')
    .option('-t, --timeout <seconds>', 'job timeout in seconds', positiveInt)
    .option('-n, --name <name>', 'a name for people')
    .option('-l, --label <KEY=VALUE>', 'label (repeatable)', keyValue('='))
    .action(async (file: string | undefined, opts, command: Command) => {
      const api = client(command);
      let body: ScheduleCreate;
      if (opts.json) {
        body = JSON.parse(opts.json === '-' ? await readStdin() : readFileSync(opts.json, 'utf8')) as ScheduleCreate;
      } else {
        const script = !file || file === '-' ? await readStdin() : readFileSync(file, 'utf8');
        const job: JobSpec = { script };
        if (opts.env) job.env = opts.env;
        if (opts.secret) job.secrets = opts.secret;
        if (opts.image) job.image = opts.image;
        if (opts.timeout) job.timeoutSeconds = opts.timeout;
        if (opts.name) job.name = opts.name;
        if (opts.label) job.labels = opts.label;
        const spec: ScheduleCreate['spec'] = {};
        if (opts.cron) spec.cron = opts.cron.length === 1 ? opts.cron[0] : opts.cron;
        if (opts.every) spec.every = opts.every;
        if (opts.timezone) spec.timezone = opts.timezone;
        body = { spec, job };
        if (opts.id) body.id = opts.id;
        if (opts.overlap) body.overlap = opts.overlap;
        if (opts.paused) body.paused = true;
        if (opts.note) body.note = opts.note;
      }
      const made = await api.createSchedule(body);
      process.stdout.write(`${made.id}\n`);
    });

  schedule
    .command('list')
    .description('Schedules, with their next run')
    .option('--json', 'print the schedules as JSON lines')
    .action(async (opts: { json?: boolean }, command: Command) => {
      const api = client(command);
      const all: ScheduleView[] = [];
      let cursor: string | undefined;
      do {
        const page = await api.schedules({ limit: 100, ...(cursor ? { cursor } : {}) });
        all.push(...page.schedules);
        cursor = page.nextCursor;
      } while (cursor);
      if (opts.json) {
        for (const s of all) process.stdout.write(`${JSON.stringify(s)}\n`);
        return;
      }
      printTable(
        ['ID', 'WHEN', 'PAUSED', 'NEXT RUN', 'JOB'],
        all.map((s) => [s.id, scheduleTiming(s), s.paused ? 'yes' : 'no', s.nextRuns[0] ?? '', s.job.name]),
      );
    });

  schedule
    .command('show')
    .description('A schedule: when it fires, its next runs and its latest jobs')
    .argument('<id>', 'schedule id')
    .option('--json', 'print the API answer as JSON')
    .action(async (id: string, opts: { json?: boolean }, command: Command) => {
      const s = await client(command).schedule(id);
      process.stdout.write(opts.json ? `${JSON.stringify(s, null, 2)}\n` : `${describeSchedule(s)}\n`);
    });

  for (const [verb, text] of [
    ['pause', 'Pause a schedule: no fire until unpaused'],
    ['unpause', 'Unpause a schedule'],
    ['trigger', 'Fire a schedule once now (paused or not)'],
  ] as const) {
    schedule
      .command(verb)
      .description(text)
      .argument('<id>', 'schedule id')
      .action(async (id: string, _opts: unknown, command: Command) => {
        const s = await client(command).scheduleAction(id, verb);
        process.stderr.write(
          `schedule ${s.id}: ${verb === 'trigger' ? 'triggered' : verb === 'pause' ? 'paused' : 'unpaused'}\n`,
        );
      });
  }

  schedule
    .command('delete')
    .description('Delete a schedule (jobs it started run on)')
    .argument('<id>', 'schedule id')
    .action(async (id: string, _opts: unknown, command: Command) => {
      await client(command).deleteSchedule(id);
      process.stderr.write(`schedule ${id}: deleted\n`);
    });
}

export function buildProgram(env: CliEnv = CliEnvSchema.parse(process.env)): Command {
  const program = new Command('hodei')
    .description('Run scripts as jobs on Hodei, over its HTTP API')
    .addOption(
      new Option('--url <url>', 'API base URL (env HODEI_URL)').default(
        env.HODEI_URL ?? `http://127.0.0.1:${env.HODEI_API_PORT ?? 8080}`,
      ),
    )
    .addOption(
      new Option('--token <token>', 'API token (env HODEI_TOKEN; default: data/api-token)').default(
        defaultToken(env),
        'from HODEI_TOKEN or the data dir',
      ),
    )
    .showHelpAfterError();

  program
    .command('submit')
    .description('Submit a script as a job: from FILE, or from stdin when FILE is - or absent')
    .argument('[file]', 'script file, or - for stdin')
    .option('-e, --env <NAME=VALUE>', 'environment variable (repeatable)', keyValue('='))
    .option(
      '--secret <NAME[=VALUE]>',
      'secret env var, encrypted in Temporal and masked in logs; NAME alone takes $NAME (repeatable)',
      secretOption,
    )
    .option('-i, --image <image>', 'image to run in')
    .option('-t, --timeout <seconds>', 'job timeout in seconds', positiveInt)
    .option('-n, --name <name>', 'a name for people')
    .option('-l, --label <KEY=VALUE>', 'label (repeatable)', keyValue('='))
    .option('--idempotency-key <key>', 'submitting again with this key returns the same job')
    .option('-f, --follow', "print the job's output until it ends, and exit with its exit code")
    .option('--priority <1-5>', 'who runs first: 1 (first) to 5 (last); default 3', positiveInt)
    .option('--fairness-key <key>', 'fair shares: jobs of different keys take turns for free slots')
    .option('--fairness-weight <weight>', "the key's share against other keys' (default 1)", Number)
    .option('--start-at <time>', 'start no earlier than this RFC 3339 time, e.g. 2026-12-01T10:00:00Z')
    .option('--concurrency-key <key>', 'at most --concurrency-limit jobs with this key run at once')
    .option('--concurrency-limit <n>', 'how many jobs with the key may run at once (default 1)', positiveInt)
    .option('-a, --artifact <GLOB>', 'keep files of /work matching GLOB after the script (repeatable)', collect)
    .action(async (file: string | undefined, opts, command: Command) => {
      const api = client(command);
      const script = !file || file === '-' ? await readStdin() : readFileSync(file, 'utf8');
      const spec: JobSpec = { script };
      if (opts.env) spec.env = opts.env;
      if (opts.secret) spec.secrets = opts.secret;
      if (opts.image) spec.image = opts.image;
      if (opts.timeout) spec.timeoutSeconds = opts.timeout;
      if (opts.name) spec.name = opts.name;
      if (opts.label) spec.labels = opts.label;
      // The API checks each of these and answers a 400 naming the bad one.
      if (opts.priority !== undefined) spec.priority = opts.priority;
      if (opts.fairnessKey !== undefined) spec.fairnessKey = opts.fairnessKey;
      if (opts.fairnessWeight !== undefined) spec.fairnessWeight = opts.fairnessWeight;
      if (opts.startAt !== undefined) spec.startAt = opts.startAt;
      if (opts.concurrencyLimit && !opts.concurrencyKey) command.error('--concurrency-limit needs --concurrency-key');
      if (opts.concurrencyKey) spec.concurrency = { key: opts.concurrencyKey, limit: opts.concurrencyLimit ?? 1 };
      if (opts.artifact) spec.artifacts = { paths: opts.artifact };
      const job = await api.submit(spec, opts.idempotencyKey);
      if (!opts.follow) {
        process.stdout.write(`${job.id}\n`);
        return;
      }
      process.stderr.write(`job ${job.id}\n`);
      const done = await followLogs(api, job.id);
      if (done.state !== 'SUCCEEDED')
        process.stderr.write(`job ${done.id} ${done.state}${done.reason ? `: ${done.reason}` : ''}\n`);
      process.exitCode = exitCodeOf(done);
    });

  program
    .command('logs')
    .description("Print a job's output (stdout and stderr, in the order printed)")
    .argument('<id>', 'job id')
    .option('-f, --follow', 'keep printing new lines until the job ends')
    .action(async (id: string, opts: { follow?: boolean }, command: Command) => {
      const api = client(command);
      if (opts.follow) await followLogs(api, id);
      else process.stdout.write(await api.logs(id));
    });

  program
    .command('status')
    .description("A job's state, exit code and timings")
    .argument('<id>', 'job id')
    .option('--json', 'print the API answer as JSON')
    .action(async (id: string, opts: { json?: boolean }, command: Command) => {
      const job = await client(command).job(id);
      process.stdout.write(opts.json ? `${JSON.stringify(job, null, 2)}\n` : `${describe(job)}\n`);
    });

  program
    .command('cancel')
    .description('Cancel a job: its container is stopped and removed')
    .argument('<id>', 'job id')
    .option('-w, --wait', 'wait until the job has ended')
    .action(async (id: string, opts: { wait?: boolean }, command: Command) => {
      const api = client(command);
      const answer = await api.cancel(id);
      process.stderr.write(`job ${id}: ${answer.message}\n`);
      if (opts.wait)
        await printStateWhenEnded(
          () => api.job(id),
          (job) => isTerminal(job.state),
        );
    });

  program
    .command('list')
    .description('Jobs, newest first')
    .option('-s, --state <state>', 'only jobs in this state')
    .option('-l, --label <KEY=VALUE>', 'only jobs with this label (repeatable)', keyValue('='))
    .option('--limit <n>', 'at most this many jobs', positiveInt, 20)
    .option('--json', 'print the jobs as JSON lines')
    .option('--priority <1-5>', 'only jobs of this priority', positiveInt)
    .action(
      async (
        opts: { state?: string; label?: Record<string, string>; limit: number; json?: boolean; priority?: number },
        command: Command,
      ) => {
        const api = client(command);
        const jobs: Job[] = [];
        let cursor: string | undefined;
        do {
          const query: ListQuery = { limit: Math.min(100, opts.limit - jobs.length) };
          // The API checks the state's name and answers a 400 naming the valid ones.
          if (opts.state) query.state = opts.state.toUpperCase() as ListQuery['state'];
          const labels = Object.entries(opts.label ?? {}).map(([k, v]) => `${k}:${v}`);
          if (labels.length > 0) query.label = labels;
          if (opts.priority !== undefined) query.priority = opts.priority;
          if (cursor) query.cursor = cursor;
          const page = await api.list(query);
          jobs.push(...page.jobs);
          cursor = page.nextCursor;
        } while (cursor && jobs.length < opts.limit);
        if (opts.json) {
          for (const job of jobs) process.stdout.write(`${JSON.stringify(job)}\n`);
          return;
        }
        const rows = jobs.map((j) => [
          j.id,
          j.state,
          j.exitCode === undefined ? '' : String(j.exitCode),
          j.createdAt,
          j.name,
        ]);
        printTable(['ID', 'STATE', 'EXIT', 'CREATED', 'NAME'], rows);
      },
    );

  scheduleCommands(program);
  addPipelineCommands(program, { client, keyValue, positiveInt });
  const artifacts = program.command('artifacts').description("A job's artifacts: the files it kept");
  artifacts
    .command('ls')
    .description("List a job's artifacts: size, sha256, path")
    .argument('<id>', 'job id')
    .option('--json', 'print the API answer as JSON')
    .action(async (id: string, opts: { json?: boolean }, command: Command) => {
      const list = await client(command).artifacts(id);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        return;
      }
      for (const a of list.artifacts) process.stdout.write(`${String(a.size).padStart(12)}  ${a.sha256}  ${a.path}\n`);
      if (list.truncated) process.stderr.write("some files were left out (see the job's log)\n");
    });
  artifacts
    .command('get')
    .description(
      'Download artifacts into DIR (default: the current one), keeping their paths; all of them without PATH',
    )
    .argument('<id>', 'job id')
    .argument('[path]', 'one artifact path')
    .option('-o, --output <dir>', 'directory to write into', '.')
    .action(async (id: string, artifactPath: string | undefined, opts: { output: string }, command: Command) => {
      const api = client(command);
      const list = await api.artifacts(id);
      const wanted = artifactPath ? list.artifacts.filter((a) => a.path === artifactPath) : list.artifacts;
      if (artifactPath && wanted.length === 0) throw new ApiError(404, `job ${id} has no artifact ${artifactPath}`);
      const root = path.resolve(opts.output);
      for (const a of wanted) {
        const target = path.resolve(root, a.path);
        // The API serves safe relative paths only; checked again before writing anywhere.
        if (!target.startsWith(root + path.sep)) throw new Error(`refusing to write outside ${root}: ${a.path}`);
        await mkdir(path.dirname(target), { recursive: true });
        const hash = createHash('sha256');
        const body = Readable.fromWeb((await api.artifact(id, a.path)) as never);
        body.on('data', (chunk: Buffer) => hash.update(chunk));
        await pipeline(body, createWriteStream(target, { mode: a.mode & 0o777 }));
        if (hash.digest('hex') !== a.sha256) throw new Error(`${a.path}: sha256 does not match`);
        process.stderr.write(`${a.path}\n`);
      }
    });

  return program;
}

/** Repeatable option values, collected in order. */
function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
