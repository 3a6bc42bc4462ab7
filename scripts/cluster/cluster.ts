/**
 * The many-machine topology on this one machine (docs/cluster.md), for `npm run cluster`
 * (scripts/cluster/main.ts) and the `cluster` test project (test/cluster/global-setup.ts):
 *
 * - PostgreSQL (Debian's) holding Temporal's persistence and SQL visibility and Hodei's log store;
 * - the Temporal server built from its Go module (scripts/cluster.sh), its frontend, history,
 *   matching and worker services as four processes, on deploy/cluster/temporal.yaml;
 * - per host a network namespace (scripts/cluster/network.ts) with its own dockerd and its own
 *   Hodei worker, reaching Temporal and PostgreSQL only over its veth link;
 * - two API replicas on HODEI_API_PORT and the next port;
 * - the S3 artifact store every API replica and worker shares: versitygw (scripts/versitygw.sh)
 *   over `<run dir>/s3`, on the servers' address, reachable from both hosts over their veths.
 *
 * Every process is a `Part` (scripts/part.ts): one that dies once the cluster runs is started
 * again, so `kill <pid>` of any one restarts it alone. The PIDs, addresses and ports are kept in
 * `<run dir>/state.json`, rewritten at each (re)start. Start-up on ports of its own: the servers'
 * ports are random, and the whole start is tried again when one is taken.
 */
import { execFile, spawn, type SpawnOptions } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import Docker from 'dockerode';
import pg from 'pg';
import type { Logger } from 'pino';
import { ensureTokenFile } from '../../api/auth.js';
import { loadConfig } from '../../domain/config.js';
import { codecKeys } from '../../domain/payload-codec.js';
import { Part, type PartHost } from '../part.js';
import { createNetwork, removeNetwork } from './network.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
/** The Temporal server version the cluster runs (the one the pinned CLI embeds). */
export const TEMPORAL_SERVER_VERSION = '1.32.0';
/** Where scripts/cluster.sh puts the server, temporal-sql-tool and the schema it ships. */
export const TEMPORAL_SERVER_DIR = path.join(ROOT, `.tools/temporal-server-${TEMPORAL_SERVER_VERSION}`);
const TEMPORAL_CLI = path.join(ROOT, '.tools/bin/temporal');
/** The S3 server scripts/versitygw.sh builds (keep its version in step). */
export const VERSITYGW = path.join(ROOT, '.tools/versitygw-1.8.0/versitygw');
/** The Temporal Web UI server the pinned CLI embeds, built by scripts/cluster-setup.sh. */
export const TEMPORAL_UI_VERSION = '2.54.1';
export const TEMPORAL_UI = path.join(ROOT, `.tools/temporal-ui-${TEMPORAL_UI_VERSION}/ui-server`);
/** The bucket of the cluster's artifact store (`HODEI_ARTIFACT_STORE=s3://hodei-artifacts`). */
export const ARTIFACT_BUCKET = 'hodei-artifacts';
const TEMPORAL_SERVICES = ['frontend', 'history', 'matching', 'worker'] as const;
const STOP_DEADLINE_MS = 15_000;
const START_ATTEMPTS = 5;

export interface ClusterOptions {
  /** Names the run dir, the containers (`hodei.instance`), the namespaces and the veths. */
  instanceId: string;
  /** Port of the first API replica (the second takes the next one); 0: ports the system picks. */
  apiPort: number;
  /** Settings for every Hodei process (HODEI_*), over this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** The hosts' names (default `a`, `b`). */
  hosts?: string[];
  /** Hodei parts' output: on this process's stdout (`inherit`) or in `<run dir>/logs` (`files`). */
  output?: 'inherit' | 'files';
  /** Throwaway data: PostgreSQL without fsync, and everything removed when stopped. */
  ephemeral?: boolean;
  logger: Logger;
}

export interface ClusterHost {
  name: string;
  netns: string;
  veth: string;
  address: string;
  dockerHost: string;
}

/** What runs where (also `<run dir>/state.json`). */
export interface ClusterInfo {
  instanceId: string;
  runDir: string;
  dataDir: string;
  logDir: string;
  apiUrls: string[];
  apiToken: string;
  codecKey: string;
  temporalAddress: string;
  /** The Temporal Web UI against the frontend (`http://127.0.0.1:<port>`). */
  temporalUiUrl: string;
  namespace: string;
  postgresUrl: string;
  logStoreUrl: string;
  /** The S3 artifact store's endpoint, region and root credentials (versitygw). */
  s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string; bucket: string };
  serverAddress: string;
  subnet: string;
  bridge: string;
  hosts: ClusterHost[];
  /** Each part's current PID. */
  pids: Record<string, number | undefined>;
}

export interface RunningCluster {
  info: ClusterInfo;
  parts: Map<string, Part>;
  /** Stops every part (Hodei first, then Temporal, then the engines and PostgreSQL), then the network. */
  stop(): Promise<void>;
}

/** The newest server binaries of Debian's postgresql package (scripts/postgres.sh installs it). */
function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(path.join(root, v, 'bin/postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error('no PostgreSQL under /usr/lib/postgresql: run scripts/cluster.sh');
  return path.join(root, versions[0]!, 'bin');
}

async function userIds(user: string): Promise<{ uid: number; gid: number }> {
  return {
    uid: Number((await run('id', ['-u', user])).stdout.trim()),
    gid: Number((await run('id', ['-g', user])).stdout.trim()),
  };
}

/**
 * PostgreSQL's data dir: `<run dir>/postgres` when the postgres user can reach the run dir, else
 * (a clone inside a directory only root may enter, such as a `mktemp -d`) one of this run dir's own
 * under that user's home, `~postgres/hodei-cluster/<run dir's hash>`.
 */
async function postgresDataDir(runDir: string, pgUser: { uid: number; gid: number } | undefined): Promise<string> {
  const inRunDir = path.join(runDir, 'postgres');
  if (!pgUser) return inRunDir;
  const reachable = await run('/bin/sh', ['-c', 'cd "$1"', 'sh', runDir], { ...pgUser }).then(
    () => true,
    () => false,
  );
  if (reachable) return inRunDir;
  const home = (await run('getent', ['passwd', 'postgres'])).stdout.trim().split(':')[5];
  if (!home) throw new Error('the postgres user has no home directory for the cluster database');
  const base = path.join(home, 'hodei-cluster');
  mkdirSync(base, { recursive: true, mode: 0o700 });
  chownSync(base, pgUser.uid, pgUser.gid);
  return path.join(base, createHash('sha256').update(runDir).digest('hex').slice(0, 16));
}

/** Kills what a crashed earlier run of this instance left running (PIDs from its state.json). */
async function killLeftovers(runDir: string, logger: Logger): Promise<void> {
  let state: ClusterInfo;
  try {
    state = JSON.parse(readFileSync(path.join(runDir, 'state.json'), 'utf8')) as ClusterInfo;
  } catch {
    return;
  }
  const netnsNames = state.hosts.map((h) => h.netns);
  for (const [part, pid] of Object.entries(state.pids)) {
    if (pid === undefined) continue;
    // Only a process that is still that part: its command line names this run's dir or namespace.
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.includes(runDir) && !netnsNames.some((n) => cmdline.includes(n))) continue;
    logger.warn({ part, pid }, 'stopping a part an earlier run left running');
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  // Let them go (dockerd's containerd ends with it).
  await sleep(500);
}

function render(template: string, values: Record<string, string | number>): string {
  return template.replace(/\$\{([A-Z_]+)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`deploy/cluster/temporal.yaml: no value for ${name}`);
    return String(value);
  });
}

/** Runs a command to its end; rejects with its output when it fails. */
async function runStep(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  try {
    return (await run(command, args, { cwd: ROOT, env, maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${path.basename(command)} ${args.slice(0, 3).join(' ')} failed: ${e.message}\n${e.stderr ?? ''}`);
  }
}

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>, failed: () => void) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    failed();
    try {
      if (await check()) return;
    } catch {
      // Not yet.
    }
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000} s`);
    await sleep(250);
  }
}

class StartupFailure extends Error {
  override name = 'StartupFailure';
  constructor(
    message: string,
    readonly portTaken: boolean,
  ) {
    super(message);
  }
}

export async function startCluster(options: ClusterOptions): Promise<RunningCluster> {
  const { logger } = options;
  const hostNames = options.hosts ?? ['a', 'b'];
  const runDir = path.join(ROOT, '.tools/cluster', options.instanceId);
  const dataDir = path.join(runDir, 'data');
  const logDir = path.join(runDir, 'logs');
  mkdirSync(runDir, { recursive: true });
  // PostgreSQL runs as its own user: it must pass through the run dir (but read nothing else there).
  chmodSync(runDir, 0o711);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  await killLeftovers(runDir, logger);

  const net = await createNetwork(options.instanceId, hostNames);
  // Engines' sockets and exec roots: short paths (socket paths hold at most 107 bytes).
  const execDir = `/run/${net.bridge}`;
  rmSync(execDir, { recursive: true, force: true });
  mkdirSync(execDir, { recursive: true, mode: 0o700 });
  const hosts: ClusterHost[] = net.hosts.map((h) => ({
    ...h,
    dockerHost: `unix://${execDir}/docker-${h.name}.sock`,
  }));

  const pgUser = process.getuid?.() === 0 ? await userIds('postgres') : undefined;
  const pgData = await postgresDataDir(runDir, pgUser);
  const bin = postgresBin();
  if (!existsSync(path.join(pgData, 'PG_VERSION'))) {
    rmSync(pgData, { recursive: true, force: true });
    mkdirSync(pgData, { mode: 0o700 });
    if (pgUser) chownSync(pgData, pgUser.uid, pgUser.gid);
    await run(
      path.join(bin, 'initdb'),
      ['-D', pgData, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'],
      { ...pgUser, cwd: pgData },
    ).catch((err: Error & { stderr?: string }) => {
      throw new Error(`initdb failed (${pgData} must be reachable by the postgres user): ${err.stderr ?? err.message}`);
    });
  }
  // Trust on loopback and on the cluster's private subnet only (nothing else can reach it).
  writeFileSync(
    path.join(pgData, 'pg_hba.conf'),
    `host all all 127.0.0.1/32 trust\nhost all all ${net.subnet} trust\n`,
  );
  if (pgUser) chownSync(path.join(pgData, 'pg_hba.conf'), pgUser.uid, pgUser.gid);

  let stopping = false;
  let running = false;
  let failure: StartupFailure | undefined;
  const parts = new Map<string, Part>();
  const info: ClusterInfo = {
    instanceId: options.instanceId,
    runDir,
    dataDir,
    logDir,
    apiUrls: [],
    apiToken: '',
    codecKey: '',
    temporalAddress: '',
    temporalUiUrl: '',
    namespace: options.env?.TEMPORAL_NAMESPACE ?? process.env.TEMPORAL_NAMESPACE ?? 'default',
    postgresUrl: '',
    logStoreUrl: '',
    // versitygw's root account, new at each start (it keeps no accounts of its own on disk).
    s3: {
      endpoint: '',
      region: 'us-east-1',
      accessKeyId: `hodei${randomBytes(6).toString('hex')}`,
      secretAccessKey: randomBytes(24).toString('hex'),
      bucket: ARTIFACT_BUCKET,
    },
    serverAddress: net.serverAddress,
    subnet: net.subnet,
    bridge: net.bridge,
    hosts,
    pids: {},
  };
  const saveState = () => {
    for (const [name, part] of parts) info.pids[name] = part.pid;
    writeFileSync(path.join(runDir, 'state.json'), `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  };
  const partHost: PartHost = {
    logger,
    stopping: () => stopping,
    running: () => running,
    onStartupExit: (part, message) => {
      const log = readLogTail(path.join(logDir, `${part.name}.log`));
      failure ??= new StartupFailure(
        `${message}\n--- end of ${logDir}/${part.name}.log ---\n${log}`,
        /address already in use|could not bind/i.test(log),
      );
    },
    onStarted: () => saveState(),
  };
  const checkFailed = () => {
    if (failure) throw failure;
  };
  const logFile = (name: string) => path.join(logDir, `${name}.log`);
  /** A part whose output goes to its own log file. */
  const addPart = (name: string, command: string, args: string[], spawnOptions: SpawnOptions = {}, toFile = true) => {
    const part = new Part(
      name,
      () => {
        const out = toFile || options.output === 'files' ? openSync(logFile(name), 'a', 0o600) : 'inherit';
        try {
          // Its own process group: a terminal's Ctrl-C reaches the launcher only, which stops the parts in order.
          return spawn(command, args, { cwd: ROOT, detached: true, ...spawnOptions, stdio: ['ignore', out, out] });
        } finally {
          if (typeof out === 'number') closeSync(out);
        }
      },
      partHost,
    );
    parts.set(name, part);
    return part;
  };

  const stopParts = async (names: string[], deadlineMs = STOP_DEADLINE_MS) => {
    await Promise.all(names.map((n) => parts.get(n)?.stop(deadlineMs, n === 'postgres' ? 'SIGINT' : 'SIGTERM')));
  };
  const stopAll = async () => {
    stopping = true;
    await stopParts([...parts.keys()].filter((n) => n.startsWith('api-') || n.startsWith('worker-')));
    await stopParts(TEMPORAL_SERVICES.map((s) => `temporal-${s}`).concat('temporal-ui'));
    await stopParts([...parts.keys()].filter((n) => n.startsWith('docker-')).concat('postgres', 's3'));
    saveState();
    await removeNetwork(options.instanceId, hostNames).catch((err: unknown) =>
      logger.warn({ err }, 'could not remove the network'),
    );
    rmSync(execDir, { recursive: true, force: true });
    if (options.ephemeral) {
      rmSync(runDir, { recursive: true, force: true });
      rmSync(pgData, { recursive: true, force: true });
    }
  };
  // Whatever ends this process, no part outlives it (short of a SIGKILL of this one).
  const killAll = () => {
    for (const part of parts.values()) part.kill();
  };
  process.once('exit', killAll);

  try {
    // One engine per host, in its namespace, with the worker image: started first, it gets ready
    // (and loads the image) while PostgreSQL and Temporal come up.
    for (const host of hosts) {
      const dockerRoot = path.join(runDir, `docker-${host.name}`);
      // nsenter, not `ip netns exec`: that one mounts a sysfs of its own, without the cgroup mounts dockerd needs.
      addPart(`docker-${host.name}`, 'nsenter', [
        `--net=/run/netns/${host.netns}`,
        'dockerd',
        '--host',
        host.dockerHost,
        '--data-root',
        dockerRoot,
        '--exec-root',
        path.join(execDir, `exec-${host.name}`),
        '--pidfile',
        path.join(execDir, `docker-${host.name}.pid`),
        '--bridge=none',
        '--iptables=false',
        '--ip-forward=false',
      ]).start();
    }
    const image = loadConfig({ ...process.env, ...options.env }).HODEI_WORKER_IMAGE;
    const enginesReady = Promise.all(
      hosts.map(async (host) => {
        const engine = new Docker({ socketPath: host.dockerHost.slice('unix://'.length) });
        await waitUntil(
          `the engine of host ${host.name} did not answer`,
          90_000,
          async () => !!(await engine.ping()),
          () => {
            if (parts.get(`docker-${host.name}`)?.pid === undefined)
              throw new Error(`the engine of host ${host.name} exited: see ${logFile(`docker-${host.name}`)}`);
          },
        );
        await loadImage(engine, image);
      }),
    );

    // Awaited below; a failure meanwhile must not go unhandled.
    enginesReady.catch(() => undefined);

    // PostgreSQL and Temporal on random ports; the whole start again when one is taken.
    for (let attempt = 1; ; attempt += 1) {
      // Below 32768: Temporal keeps membership ports in a smallint column (and Linux hands out
      // ephemeral ports from 32768 up, so these clash less).
      const base = randomInt(20_000, 32_700);
      try {
        await startServers(base);
        break;
      } catch (err) {
        if (!(err instanceof StartupFailure && err.portTaken) || attempt >= START_ATTEMPTS) throw err;
        logger.warn({ attempt, base }, 'a port was taken: starting the servers again on other ports');
        const servers = [...parts.keys()].filter((n) => !n.startsWith('docker-'));
        await stopParts(servers, 5000);
        for (const name of servers) parts.delete(name);
        failure = undefined;
      }
    }

    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...options.env,
      TEMPORAL_ADDRESS: info.temporalAddress,
      TEMPORAL_NAMESPACE: info.namespace,
      HODEI_DATA_DIR: dataDir,
      HODEI_INSTANCE_ID: options.instanceId,
      HODEI_LOG_STORE: info.logStoreUrl,
      HODEI_ARTIFACT_STORE: `s3://${info.s3.bucket}`,
      HODEI_S3_ENDPOINT: info.s3.endpoint,
      HODEI_S3_REGION: info.s3.region,
      HODEI_S3_ACCESS_KEY_ID: info.s3.accessKeyId,
      HODEI_S3_SECRET_ACCESS_KEY: info.s3.secretAccessKey,
      HODEI_S3_FORCE_PATH_STYLE: 'true',
    };
    env.HODEI_WORKER_CAPACITY ||= '4';
    await runStep('bash', [path.join(ROOT, 'scripts/temporal-init.sh')], env);

    await enginesReady;

    // The secrets every Hodei process shares, made once here (not raced by two replicas).
    const config = loadConfig(env);
    info.codecKey = codecKeys(config)[0]!.toString('base64');
    info.apiToken = config.HODEI_API_TOKENS.length > 0 ? '' : ensureTokenFile(dataDir);

    const node = (script: string) => [process.execPath, '--import', 'tsx', path.join(ROOT, script)];
    const apiPorts = [options.apiPort, options.apiPort === 0 ? 0 : options.apiPort + 1];
    const apiEnvs: NodeJS.ProcessEnv[] = [];
    for (const [i, port] of apiPorts.entries()) {
      const name = `api-${i + 1}`;
      const [command, ...args] = node('api/main.ts');
      apiEnvs.push({
        ...env,
        HODEI_API_PORT: String(port),
        HODEI_PORTS_FILE: path.join(runDir, `${name}.ports`),
        // One codec endpoint (for the Web UI) is enough: the first replica's.
        ...(i > 0 ? { HODEI_CODEC_PORT: 'off' } : {}),
      });
      addPart(
        name,
        command!,
        args,
        {
          env: apiEnvs[i],
        },
        false,
      );
    }
    for (const host of hosts) {
      const name = `worker-${host.name}`;
      const [command, ...args] = node('worker/main.ts');
      addPart(
        name,
        'nsenter',
        [`--net=/run/netns/${host.netns}`, command!, ...args],
        {
          env: { ...env, DOCKER_HOST: host.dockerHost, HODEI_PORTS_FILE: path.join(runDir, `${name}.ports`) },
        },
        false,
      );
    }
    const ready = [...parts.keys()].filter((n) => n.startsWith('api-') || n.startsWith('worker-'));
    for (const name of ready) rmSync(path.join(runDir, `${name}.ports`), { force: true });
    for (const name of ready) parts.get(name)!.start();
    await Promise.all(
      ready.map((name) =>
        waitUntil(
          `${name} was not ready`,
          180_000,
          async () => existsSync(path.join(runDir, `${name}.ports`)),
          checkFailed,
        ),
      ),
    );
    const apiHost = env.HODEI_API_HOST || '127.0.0.1';
    info.apiUrls = apiPorts.map((_, i) => {
      const { api } = JSON.parse(readFileSync(path.join(runDir, `api-${i + 1}.ports`), 'utf8')) as { api: number };
      // A replica started again listens where it did (port 0 picked this one).
      apiEnvs[i]!.HODEI_API_PORT = String(api);
      return `http://${apiHost.includes(':') ? `[${apiHost}]` : apiHost}:${api}`;
    });
    running = true;
    saveState();
  } catch (err) {
    await stopAll();
    process.off('exit', killAll);
    throw err;
  }

  return {
    info,
    parts,
    stop: async () => {
      await stopAll();
      process.off('exit', killAll);
    },
  };

  async function startServers(base: number): Promise<void> {
    const ports = {
      PG_PORT: base,
      FRONTEND_PORT: base + 1,
      FRONTEND_MEMBERSHIP_PORT: base + 2,
      FRONTEND_HTTP_PORT: base + 3,
      HISTORY_PORT: base + 4,
      HISTORY_MEMBERSHIP_PORT: base + 5,
      MATCHING_PORT: base + 6,
      MATCHING_MEMBERSHIP_PORT: base + 7,
      WORKER_PORT: base + 8,
      WORKER_MEMBERSHIP_PORT: base + 9,
      S3_PORT: base + 10,
      UI_PORT: base + 11,
    };
    const settings: Record<string, string> = {
      listen_addresses: `127.0.0.1,${net.serverAddress}`,
      unix_socket_directories: '',
      max_connections: '300',
      ...(options.ephemeral ? { fsync: 'off', full_page_writes: 'off' } : {}),
    };
    addPart(
      'postgres',
      path.join(bin, 'postgres'),
      ['-D', pgData, '-p', String(ports.PG_PORT), ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])],
      { ...pgUser, cwd: pgData },
    ).start();
    info.postgresUrl = `postgres://postgres@${net.serverAddress}:${ports.PG_PORT}/postgres`;
    info.logStoreUrl = `postgres://postgres@${net.serverAddress}:${ports.PG_PORT}/hodei_logs`;
    await waitUntil(
      'PostgreSQL did not accept connections',
      60_000,
      async () => {
        const client = new pg.Client({ connectionString: info.postgresUrl });
        try {
          await client.connect();
          return true;
        } finally {
          await client.end().catch(() => undefined);
        }
      },
      checkFailed,
    );
    await setUpDatabases(info.postgresUrl);
    await startS3(ports.S3_PORT);

    const dynamicConfig = path.join(ROOT, 'deploy/cluster/dynamicconfig.yaml');
    const configFile = path.join(runDir, 'temporal.yaml');
    writeFileSync(
      configFile,
      render(readFileSync(path.join(ROOT, 'deploy/cluster/temporal.yaml'), 'utf8'), {
        ...ports,
        PG_ADDRESS: `${net.serverAddress}:${ports.PG_PORT}`,
        BIND_IP: net.serverAddress,
        DYNAMIC_CONFIG: dynamicConfig,
      }),
    );
    info.temporalAddress = `${net.serverAddress}:${ports.FRONTEND_PORT}`;
    const startService = (service: (typeof TEMPORAL_SERVICES)[number]) =>
      addPart(`temporal-${service}`, path.join(TEMPORAL_SERVER_DIR, 'server'), [
        '--config-file',
        configFile,
        '--allow-no-auth',
        'start',
        '--service',
        service,
      ]).start();
    // Each service writes the cluster's metadata record on a new database if it is missing; two at
    // once lose the race ("failed to initialize current cluster metadata"), so the first service
    // starts alone until the record exists, then the others.
    const [first, ...others] = TEMPORAL_SERVICES;
    startService(first);
    await waitUntil(
      'the Temporal frontend did not record the cluster metadata',
      120_000,
      async () => {
        const client = new pg.Client({ connectionString: info.postgresUrl.replace(/\/postgres$/, '/temporal') });
        await client.connect();
        try {
          return (await client.query('SELECT 1 FROM cluster_metadata_info LIMIT 1')).rowCount === 1;
        } finally {
          await client.end();
        }
      },
      checkFailed,
    );
    for (const service of others) startService(service);
    await waitUntil(
      'the Temporal frontend did not answer',
      120_000,
      async () => {
        await run(TEMPORAL_CLI, ['operator', 'cluster', 'health', '--address', info.temporalAddress], {
          timeout: 10_000,
        });
        return true;
      },
      checkFailed,
    );
    await startUi(ports.UI_PORT);
  }

  /** The Temporal Web UI (ui-server) against the frontend, on loopback; its config in the run dir. */
  async function startUi(port: number): Promise<void> {
    const configDir = path.join(runDir, 'ui-config');
    mkdirSync(configDir, { recursive: true });
    const codecPort = options.env?.HODEI_CODEC_PORT ?? process.env.HODEI_CODEC_PORT ?? '8234';
    writeFileSync(
      path.join(configDir, 'cluster.yaml'),
      [
        `temporalGrpcAddress: ${info.temporalAddress}`,
        'host: 127.0.0.1',
        `port: ${port}`,
        'enableUi: true',
        `defaultNamespace: ${info.namespace}`,
        'disableNewsFetch: true',
        'refreshInterval: 1m',
        // The browser decodes payloads (encrypted in Temporal) with the first API replica's codec endpoint.
        ...(codecPort === 'off' ? [] : ['codec:', `  endpoint: http://127.0.0.1:${codecPort}`]),
        '',
      ].join('\n'),
    );
    addPart('temporal-ui', TEMPORAL_UI, [
      '--root',
      runDir,
      '--config',
      'ui-config',
      '--env',
      'cluster',
      'start',
    ]).start();
    info.temporalUiUrl = `http://127.0.0.1:${port}`;
    await waitUntil(
      'the Temporal Web UI did not answer',
      60_000,
      async () => (await fetch(`${info.temporalUiUrl}/api/v1/settings`)).ok,
      checkFailed,
    );
  }

  /** versitygw over `<run dir>/s3` on the servers' address, and the artifact bucket in it. */
  async function startS3(port: number): Promise<void> {
    const root = path.join(runDir, 's3');
    mkdirSync(root, { recursive: true, mode: 0o700 });
    addPart('s3', VERSITYGW, ['--port', `${net.serverAddress}:${port}`, 'posix', root], {
      env: { ...process.env, ROOT_ACCESS_KEY: info.s3.accessKeyId, ROOT_SECRET_KEY: info.s3.secretAccessKey },
    }).start();
    info.s3.endpoint = `http://${net.serverAddress}:${port}`;
    const client = new S3Client({
      endpoint: info.s3.endpoint,
      region: info.s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: info.s3.accessKeyId, secretAccessKey: info.s3.secretAccessKey },
    });
    try {
      await waitUntil(
        'versitygw did not answer',
        30_000,
        async () => {
          try {
            await client.send(new HeadBucketCommand({ Bucket: info.s3.bucket }));
          } catch (err) {
            if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) throw err;
            await client.send(new CreateBucketCommand({ Bucket: info.s3.bucket }));
          }
          return true;
        },
        checkFailed,
      );
    } finally {
      client.destroy();
    }
  }

  /** Temporal's two databases and their schema (created, then upgraded) and the log store's database. */
  async function setUpDatabases(url: string): Promise<void> {
    const existing = new Set(
      (await adminQuery(url, 'SELECT datname FROM pg_database')).map((r) => (r as { datname: string }).datname),
    );
    const tool = path.join(TEMPORAL_SERVER_DIR, 'temporal-sql-tool');
    const { hostname, port } = new URL(url);
    for (const [db, schema] of [
      ['temporal', 'temporal'],
      ['temporal_visibility', 'visibility'],
    ] as const) {
      const common = ['--plugin', 'postgres12', '--ep', hostname, '-p', port, '-u', 'postgres', '--db', db];
      if (!existing.has(db)) {
        await runStep(tool, [...common, 'create-database']);
        await runStep(tool, [...common, 'setup-schema', '-v', '0.0']);
      }
      // Idempotent: applies only the versions the database lacks.
      await runStep(tool, [
        ...common,
        'update-schema',
        '-d',
        path.join(TEMPORAL_SERVER_DIR, 'schema/postgresql/v12', schema, 'versioned'),
      ]);
    }
    if (!existing.has('hodei_logs')) await adminQuery(url, 'CREATE DATABASE hodei_logs');
  }
}

async function adminQuery(url: string, text: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

/** Copies an image from this machine's engine (`docker save | docker load`) when the host lacks it. */
async function loadImage(engine: Docker, image: string): Promise<void> {
  try {
    await engine.getImage(image).inspect();
    return;
  } catch {
    // Not there yet.
  }
  const archive = await new Docker().getImage(image).get();
  await new Promise<void>((resolve, reject) => {
    void engine.loadImage(archive).then((stream) => {
      stream.on('end', resolve);
      stream.on('error', reject);
      stream.resume();
    }, reject);
  });
}

function readLogTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}
