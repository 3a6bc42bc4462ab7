import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { PipelineListQuery, PipelineSpec, PipelineView } from '../api-client/index.js';
import { PIPELINE_TERMINAL_STATES } from '../domain/pipeline-state.js';
import { ApiError, type HodeiClient } from './client.js';
import { printStateWhenEnded, printTable } from './output.js';

const POLL_MS = 500;

/** The exit code `pipeline run --follow` ends with: 0 when it succeeded, 130 when cancelled, 1 otherwise. */
export function pipelineExitCode(p: Pick<PipelineView, 'state'>): number {
  return p.state === 'SUCCEEDED' ? 0 : p.state === 'CANCELLED' ? 130 : 1;
}

/** A pipeline spec from a `.json`, `.yaml` or `.yml` file. */
export function readPipelineFile(file: string): PipelineSpec {
  const text = readFileSync(file, 'utf8');
  return (/\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text)) as PipelineSpec;
}

const seconds = (ms?: number) => (ms === undefined ? '' : `${(ms / 1000).toFixed(1)}s`);

function describePipeline(p: PipelineView): string {
  const head = [
    `id         ${p.id}`,
    `name       ${p.name}`,
    `state      ${p.state}${p.reason ? ` (${p.reason})` : ''}`,
    `created    ${p.createdAt}`,
    ...(p.finishedAt ? [`finished   ${p.finishedAt}`] : []),
    `critical   ${p.criticalPath.steps.join(' → ')} ${seconds(p.criticalPath.durationMs)}`,
  ];
  const width = Math.max(4, ...p.steps.map((s) => s.name.length));
  const steps = p.steps.map((s) =>
    [
      s.name.padEnd(width),
      s.state.padEnd(9),
      seconds(s.durationMs).padStart(7),
      s.jobId ?? '',
      s.needs.length > 0 ? `needs ${s.needs.join(', ')}` : '',
      s.reason ?? '',
    ]
      .join('  ')
      .trimEnd(),
  );
  return [...head, '', `${'STEP'.padEnd(width)}  STATE      DURATION  JOB`, ...steps].join('\n');
}

/**
 * Follows a pipeline until it ends: each step's output as its job runs, every line prefixed with
 * the step's name (stdout to stdout, the rest to stderr), and each step's end on stderr.
 */
async function followPipeline(api: HodeiClient, id: string): Promise<PipelineView> {
  const followed = new Map<string, Promise<void>>();
  const reported = new Set<string>();
  for (;;) {
    const p = await api.pipeline(id);
    for (const step of p.steps) {
      if (step.jobId && !followed.has(step.name)) {
        const prefix = `${step.name} | `;
        followed.set(
          step.name,
          api
            .follow(step.jobId, (event) => {
              if (event.stream === 'stdout') process.stdout.write(`${prefix}${event.line}\n`);
              else process.stderr.write(`${prefix}${event.stream === 'system' ? '[hodei] ' : ''}${event.line}\n`);
            })
            .then(
              () => undefined,
              // A job the pipeline cancelled before it started has no log: nothing to show.
              (err: unknown) => {
                if (!(err instanceof ApiError && err.status === 404)) throw err;
              },
            ),
        );
      }
      if (['SUCCEEDED', 'FAILED', 'CANCELLED', 'SKIPPED'].includes(step.state) && !reported.has(step.name)) {
        reported.add(step.name);
        const how = `${step.state}${step.durationMs !== undefined ? ` in ${seconds(step.durationMs)}` : ''}`;
        process.stderr.write(`[hodei] step ${step.name} ${how}${step.reason ? `: ${step.reason}` : ''}\n`);
      }
    }
    if (PIPELINE_TERMINAL_STATES.includes(p.state)) {
      await Promise.all(followed.values());
      return p;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

type Helpers = {
  client: (command: Command) => HodeiClient;
  keyValue: (sep: string) => (value: string, previous?: Record<string, string>) => Record<string, string>;
  positiveInt: (value: string) => number;
};

/** `hodei pipeline run|show|list|cancel`. */
export function addPipelineCommands(program: Command, { client, keyValue, positiveInt }: Helpers): void {
  const pipeline = program.command('pipeline').description('Pipelines: a DAG of steps, each a job');

  pipeline
    .command('run')
    .description('Submit a pipeline from FILE (.json, .yaml or .yml)')
    .argument('<file>', 'pipeline spec')
    .option('--idempotency-key <key>', 'submitting again with this key returns the same pipeline')
    .option('-f, --follow', "print each step's output, prefixed with its name, and exit with the pipeline's outcome")
    .action(async (file: string, opts: { idempotencyKey?: string; follow?: boolean }, command: Command) => {
      const api = client(command);
      const p = await api.submitPipeline(readPipelineFile(file), opts.idempotencyKey);
      if (!opts.follow) {
        process.stdout.write(`${p.id}\n`);
        return;
      }
      process.stderr.write(`pipeline ${p.id}\n`);
      const done = await followPipeline(api, p.id);
      process.stderr.write(`pipeline ${done.id} ${done.state}${done.reason ? `: ${done.reason}` : ''}\n`);
      process.exitCode = pipelineExitCode(done);
    });

  pipeline
    .command('show')
    .description("A pipeline's state, its steps, their jobs and durations")
    .argument('<id>', 'pipeline id')
    .option('--json', 'print the API answer as JSON')
    .action(async (id: string, opts: { json?: boolean }, command: Command) => {
      const p = await client(command).pipeline(id);
      process.stdout.write(opts.json ? `${JSON.stringify(p, null, 2)}\n` : `${describePipeline(p)}\n`);
    });

  pipeline
    .command('cancel')
    .description("Cancel a pipeline: its running steps' jobs are cancelled, the rest skipped")
    .argument('<id>', 'pipeline id')
    .option('-w, --wait', 'wait until the pipeline has ended')
    .action(async (id: string, opts: { wait?: boolean }, command: Command) => {
      const api = client(command);
      const answer = await api.cancelPipeline(id);
      process.stderr.write(`pipeline ${id}: ${answer.message}\n`);
      if (opts.wait)
        await printStateWhenEnded(
          () => api.pipeline(id),
          (p) => PIPELINE_TERMINAL_STATES.includes(p.state),
        );
    });

  pipeline
    .command('list')
    .description('Pipelines, newest first')
    .option('-s, --state <state>', 'only pipelines in this state')
    .option('-l, --label <KEY=VALUE>', 'only pipelines with this label (repeatable)', keyValue('='))
    .option('--limit <n>', 'at most this many pipelines', positiveInt, 20)
    .option('--json', 'print the pipelines as JSON lines')
    .action(
      async (
        opts: { state?: string; label?: Record<string, string>; limit: number; json?: boolean },
        command: Command,
      ) => {
        const api = client(command);
        const found: PipelineView[] = [];
        let cursor: string | undefined;
        do {
          const query: PipelineListQuery = { limit: Math.min(100, opts.limit - found.length) };
          if (opts.state) query.state = opts.state.toUpperCase() as PipelineListQuery['state'];
          const labels = Object.entries(opts.label ?? {}).map(([k, v]) => `${k}:${v}`);
          if (labels.length > 0) query.label = labels;
          if (cursor) query.cursor = cursor;
          const page = await api.pipelines(query);
          found.push(...page.pipelines);
          cursor = page.nextCursor;
        } while (cursor && found.length < opts.limit);
        if (opts.json) {
          for (const p of found) process.stdout.write(`${JSON.stringify(p)}\n`);
          return;
        }
        const rows = found.map((p) => [p.id, p.state, String(p.steps.length), p.createdAt, p.name]);
        printTable(['ID', 'STATE', 'STEPS', 'CREATED', 'NAME'], rows);
      },
    );
}
