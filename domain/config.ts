import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseTokenEntry } from './api-scopes.js';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().min(1);

const CODEC_KEY_MESSAGE = 'must be base64 of 32 random bytes (e.g. `openssl rand -base64 32`)';

function isCodecKey(value: string): boolean {
  return /^[A-Za-z0-9+/]{43}=$/.test(value) && Buffer.from(value, 'base64').length === 32;
}

/**
 * Every setting, read from the environment once at start-up. Each has a default, so the
 * platform runs with no configuration at all. Documented in docs/settings.md, one row each.
 */
const ConfigSchema = z.object({
  /** Temporal frontend address. */
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  /** Temporal namespace holding the jobs. */
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** Task queue on which jobs are queued; each worker also serves `<queue>@<host id>`. */
  HODEI_TASK_QUEUE: z.string().min(1).default('hodei-jobs'),
  /** Port of the HTTP API (0: one the system picks; see HODEI_PORTS_FILE). */
  HODEI_API_PORT: port.default(8080),
  /** Address the HTTP API listens on. */
  HODEI_API_HOST: z.string().min(1).default('127.0.0.1'),
  /**
   * API tokens, comma-separated: each a token or `sha256:<hex>` of one, optionally followed by
   * `:` and its scopes joined by `+` (`read`, `submit`, `cancel`, `write`; none: all). Every route but
   * `/healthz`, `/readyz` and the web page (`/`, `/assets/*`) needs `Authorization: Bearer
   * <token>`. Default: none configured, so the API uses (and on first start creates) the token in
   * `<data dir>/api-token`.
   */
  HODEI_API_TOKENS: z
    .string()
    .default('')
    .transform((value) =>
      value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t.length > 0),
    )
    .superRefine((entries, ctx) => {
      for (const [i, entry] of entries.entries()) {
        try {
          parseTokenEntry(entry);
        } catch (err) {
          // Names the entry by position: the message must never repeat a token.
          ctx.addIssue({ code: 'custom', message: `entry ${i + 1}: ${(err as Error).message}` });
        }
      }
    }),
  /** Where logs and the installation id live. */
  HODEI_DATA_DIR: z.string().min(1).default('./data'),
  /**
   * Where job output is stored: `sqlite` (the default), a file in the data dir for one machine;
   * or a `postgres://…` / `postgresql://…` URL, a PostgreSQL database that every API replica and
   * worker host shares.
   */
  HODEI_LOG_STORE: z
    .string()
    .default('sqlite')
    .transform((value) => value.trim() || 'sqlite')
    // The message never repeats the value: a URL may hold a password.
    .refine(
      (value) => value === 'sqlite' || (/^postgres(ql)?:\/\/./.test(value) && URL.canParse(value)),
      'must be "sqlite" or a postgres://… or postgresql://… URL',
    ),
  /** Id of this installation, put on every container as `hodei.instance`. Default: generated once, kept in the data dir. */
  HODEI_INSTANCE_ID: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be 1-63 letters, digits, ., _ or -')
    .optional(),
  /** Most job containers (created or running) one worker's Docker host holds at once. */
  HODEI_WORKER_CAPACITY: positiveInt.default(8),
  /**
   * Started, idle containers each worker keeps of its default image and resource shape, each for
   * one job that fits (docs/capacity.md); 0 turns the pool off.
   */
  HODEI_WARM_POOL: z.coerce.number().int().min(0).max(16).default(2),
  /** Port of the worker's Prometheus `/metrics`. Default: none (the worker serves no HTTP). */
  HODEI_WORKER_METRICS_PORT: port.optional(),
  /** Address the worker's `/metrics` listens on. */
  HODEI_WORKER_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  /** Image jobs run in when they name none. Built by `npm start` from Dockerfile.worker. */
  HODEI_WORKER_IMAGE: z.string().min(1).default('hodei-worker:latest'),
  /** Days a finished job's record (Temporal retention) and logs are kept. */
  HODEI_RETENTION_DAYS: positiveInt.default(30),
  /** Images jobs may name: comma-separated, `*` matches anything. Default: the worker image only. */
  HODEI_ALLOWED_IMAGES: z
    .string()
    .optional()
    .transform((value) =>
      value
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  /** Memory limit of a job container, MiB. */
  HODEI_JOB_MEMORY_MB: positiveInt.default(1024),
  /** CPU limit of a job container, cores. */
  HODEI_JOB_CPUS: z.coerce.number().positive().default(1),
  /** Process limit of a job container. */
  HODEI_JOB_PIDS_LIMIT: positiveInt.default(512),
  /** Size of a job's in-memory scratch space (/tmp, /var/tmp, working directory), MiB. */
  HODEI_JOB_SCRATCH_MB: positiveInt.default(512),
  /** Most memory a job may ask for, MiB. */
  HODEI_MAX_JOB_MEMORY_MB: positiveInt.default(8192),
  /** Most CPUs a job may ask for. */
  HODEI_MAX_JOB_CPUS: z.coerce.number().positive().default(4),
  /** Most processes a job may ask for. */
  HODEI_MAX_JOB_PIDS_LIMIT: positiveInt.default(4096),
  /** Most scratch space a job may ask for, MiB. */
  HODEI_MAX_JOB_SCRATCH_MB: positiveInt.default(4096),
  /** How many times a job that lost its host (worker and engine gone) is run again elsewhere. */
  HODEI_INFRA_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
  /** How long removing a job's container keeps retrying (Docker unreachable) before the job ends anyway, seconds. */
  HODEI_CLEANUP_DEADLINE_SECONDS: positiveInt.default(120),
  /** Seconds a host may stay silent before its running jobs count as lost. */
  HODEI_HOST_LOSS_SECONDS: positiveInt.default(60),
  /** How long provisioning retries an unreachable or failing Docker engine before the job fails, seconds. */
  HODEI_PROVISION_DEADLINE_SECONDS: positiveInt.default(300),
  /** Most seconds a job may ask for between SIGTERM and SIGKILL (`cancelGraceSeconds`). */
  HODEI_MAX_CANCEL_GRACE_SECONDS: z.coerce.number().int().min(0).max(300).default(60),
  /**
   * How often the reaper looks for containers whose job has ended, seconds. A container whose
   * workflow closed without cleaning up (terminated) goes at the next sweep. A sweep costs one
   * container list and one Temporal describe per job container on the host.
   */
  HODEI_REAPER_INTERVAL_SECONDS: positiveInt.default(10),
  /**
   * Age below which the reaper leaves a container alone while Temporal does not know its workflow
   * (it may be provisioning), seconds. A closed workflow's container needs no such wait.
   */
  HODEI_REAPER_GRACE_SECONDS: z.coerce.number().int().min(0).default(60),
  /**
   * Most bytes of output stored per job (100 MiB). Past it the job runs on and its output is
   * read but dropped, with one `system` line saying how much.
   */
  HODEI_LOG_MAX_BYTES: positiveInt.default(100 * 1024 * 1024),
  /** How often the API deletes the logs of jobs that ended over HODEI_RETENTION_DAYS ago, seconds. */
  HODEI_LOG_SWEEP_INTERVAL_SECONDS: positiveInt.default(3600),
  /** A live log stream (SSE) quiet this long gets a keep-alive comment, seconds. */
  HODEI_SSE_KEEPALIVE_SECONDS: positiveInt.default(15),
  /**
   * Key of the payload codec (AES-256-GCM): base64 of 32 random bytes. Every payload the platform
   * puts in Temporal (job input with its secrets, activity input and results, memo, heartbeats) is
   * encrypted with it. Default: the key in `<data dir>/codec-key`, created on first start. Every
   * API and worker of one installation needs the same key.
   */
  HODEI_CODEC_KEY: z
    .string()
    .optional()
    .transform((value) => (value?.trim() ? value.trim() : undefined))
    .refine((value) => value === undefined || isCodecKey(value), CODEC_KEY_MESSAGE),
  /** Earlier codec keys, comma-separated: still decrypt what they encrypted, encrypt nothing. */
  HODEI_CODEC_PREVIOUS_KEYS: z
    .string()
    .default('')
    .transform((value) =>
      value
        .split(',')
        .map((k) => k.trim())
        .filter((k) => k.length > 0),
    )
    .refine((keys) => keys.every(isCodecKey), CODEC_KEY_MESSAGE),
  /**
   * Port of the codec endpoint the Temporal Web UI decodes payloads with (`POST /decode`,
   * `/encode`), served by the API on 127.0.0.1 only; `off`: none.
   */
  HODEI_CODEC_PORT: z.union([z.literal('off'), port]).default(8234),
  /**
   * Browser origins allowed to call the codec endpoint (CORS), comma-separated. Default: the
   * origin of `HODEI_TEMPORAL_UI_URL`, with `localhost` and `127.0.0.1` both.
   */
  HODEI_CODEC_CORS_ORIGINS: z
    .string()
    .optional()
    .transform((value) =>
      value
        ?.split(',')
        .map((s) => s.trim().replace(/\/+$/, ''))
        .filter(Boolean),
    ),
  /** Port of the Temporal Web UI that `npm start` runs (`npm start` only). */
  HODEI_TEMPORAL_UI_PORT: port.default(8233),
  /** Base URL of the Temporal Web UI; the web page links each job to its workflow there. */
  HODEI_TEMPORAL_UI_URL: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:8233'),
  /** Log level of the API and worker (pino levels). */
  HODEI_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** How the API, the worker and `npm start` print logs: `json`, `pretty`, or `auto` (pretty on a terminal, JSON when piped). */
  HODEI_LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /**
   * A file where the API (`{"api": …, "codec": …}`) or the worker (`{"metrics": …}`) writes the
   * ports it bound, once it listens: for a launcher that sets a port to 0 (the system picks a free
   * one) and needs the real one. Default: none written.
   */
  HODEI_PORTS_FILE: z.string().min(1).optional(),
  /** Most bytes of artifacts kept per job (1 GiB); a job's `artifacts.maxBytes` may be lower, never higher. */
  HODEI_ARTIFACT_MAX_BYTES: positiveInt.default(1024 * 1024 * 1024),
  /**
   * Where job artifacts are stored: `datadir` (the default), content-addressed files under
   * `<data dir>/artifacts` for one machine; or `s3://bucket/prefix`, S3-compatible object storage
   * every API replica and worker host shares (see the HODEI_S3_* settings).
   */
  HODEI_ARTIFACT_STORE: z
    .string()
    .default('datadir')
    .transform((value) => value.trim() || 'datadir')
    .refine(
      (value) => value === 'datadir' || /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(value),
      'must be "datadir" or s3://bucket[/prefix]',
    ),
  /** Endpoint of the S3 service (e.g. `http://127.0.0.1:7070`). Default: AWS's, from the region. */
  HODEI_S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  /** Region of the S3 bucket. */
  HODEI_S3_REGION: z.string().min(1).default('us-east-1'),
  /** Access key id for S3. Default: the AWS SDK's own chain (AWS_ACCESS_KEY_ID, profiles, instance roles). */
  HODEI_S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  /** Secret access key for S3 (with HODEI_S3_ACCESS_KEY_ID). */
  HODEI_S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  /** Path-style bucket addressing (`endpoint/bucket/key`), as most S3-compatible servers want: `true`/`false`. */
  HODEI_S3_FORCE_PATH_STYLE: z
    .enum(['true', 'false'])
    .default('true')
    .transform((value) => value === 'true'),
  /**
   * How often a running job's run activity heartbeats, ms: each heartbeat is a write to the job's
   * state in Temporal. A cancel is told to the job's host at once (`stopRun`); the heartbeat's
   * answer brings it only to a run of a job started before that, or in another process.
   */
  HODEI_HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(20).max(2000).default(1000),
});

export type Config = Omit<
  z.infer<typeof ConfigSchema>,
  'HODEI_INSTANCE_ID' | 'HODEI_ALLOWED_IMAGES' | 'HODEI_CODEC_CORS_ORIGINS'
> & {
  HODEI_INSTANCE_ID: string;
  HODEI_ALLOWED_IMAGES: string[];
  HODEI_CODEC_CORS_ORIGINS: string[];
};

/** Thrown when a setting has a bad value; the message names every bad setting. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the settings, failing fast with a readable message. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = ConfigSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid settings:\n${lines.join('\n')}`);
  }
  const config = parsed.data;
  config.HODEI_DATA_DIR = path.resolve(config.HODEI_DATA_DIR);
  return {
    ...config,
    HODEI_INSTANCE_ID: config.HODEI_INSTANCE_ID ?? loadInstanceId(config.HODEI_DATA_DIR),
    HODEI_ALLOWED_IMAGES: config.HODEI_ALLOWED_IMAGES?.length
      ? config.HODEI_ALLOWED_IMAGES
      : [config.HODEI_WORKER_IMAGE],
    HODEI_CODEC_CORS_ORIGINS: config.HODEI_CODEC_CORS_ORIGINS?.length
      ? config.HODEI_CODEC_CORS_ORIGINS
      : loopbackTwins(config.HODEI_TEMPORAL_UI_URL),
  };
}

/** A URL's origin, and the same with `localhost` for `127.0.0.1` or the other way round. */
function loopbackTwins(url: string): string[] {
  const origin = new URL(url);
  const twin = new URL(url);
  if (origin.hostname === '127.0.0.1') twin.hostname = 'localhost';
  else if (origin.hostname === 'localhost') twin.hostname = '127.0.0.1';
  return [...new Set([origin.origin, twin.origin])];
}

/** The installation id kept in the data dir, created on first use. */
function loadInstanceId(dataDir: string): string {
  const file = path.join(dataDir, 'instance-id');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    // The data dir holds the API token and the codec key: this user's only.
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const id = `hodei-${randomUUID().slice(0, 8)}`;
    try {
      writeFileSync(file, `${id}\n`, { flag: 'wx', mode: 0o600 });
      return id;
    } catch {
      // Another process (API or worker) created it first.
      return readFileSync(file, 'utf8').trim();
    }
  }
}
