/**
 * Commands run in a job's running container (`docker exec`), as the job's own unprivileged user,
 * with their stdout as a stream with back-pressure all the way to the engine.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type Docker from 'dockerode';
import { JOB_USER } from './container-spec.js';
import { END_MARKER, parseScriptEnd, signalScriptCommand, type ScriptEnd } from './script-hold.js';

/** Most bytes of a command's stderr kept (for its error message). */
const STDERR_KEEP = 16 * 1024;
/** How long, and how often, a command whose output ended is looked at until it has exited, ms. */
const EXIT_WAIT_MS = 5000;
const EXIT_POLL_MS = 20;

/**
 * Splits Docker's multiplexed stream (8-byte frame headers) into stdout, passed on, and stderr,
 * kept (bounded). A Transform, so a slow reader of stdout pauses the engine's connection.
 */
class Demux extends Transform {
  private pending: Buffer = Buffer.alloc(0);
  /** Bytes of the current frame still to come, and its stream type. */
  private left = 0;
  private type = 0;
  stderr: Buffer = Buffer.alloc(0);

  constructor() {
    // Room for a few of the engine's frames: the socket keeps flowing while the reader works.
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    while (buf.length > 0) {
      if (this.left === 0) {
        if (buf.length < 8) {
          this.pending = Buffer.from(buf);
          break;
        }
        this.type = buf[0]!;
        this.left = buf.readUInt32BE(4);
        buf = buf.subarray(8);
        continue;
      }
      const take = Math.min(this.left, buf.length);
      const payload = buf.subarray(0, take);
      if (this.type === 2) {
        if (this.stderr.length < STDERR_KEEP)
          this.stderr = Buffer.concat([this.stderr, payload]).subarray(0, STDERR_KEEP);
      } else this.push(payload);
      this.left -= take;
      buf = buf.subarray(take);
    }
    done();
  }
}

export interface ExecRun {
  /** The command's stdout. */
  stdout: Readable;
  /** Once stdout has ended: the exit code and the (start of the) stderr. */
  result(): Promise<{ exitCode: number | null; stderr: string }>;
}

/** Runs `cmd` in the running container as the job's user. */
export async function execInContainer(container: Docker.Container, cmd: string[]): Promise<ExecRun> {
  const exec = await container.exec({
    Cmd: cmd,
    User: JOB_USER,
    AttachStdout: true,
    AttachStderr: true,
    AttachStdin: false,
    Tty: false,
  });
  const raw = (await exec.start({ hijack: true, stdin: false })) as unknown as Readable;
  const demux = new Demux();
  raw.on('error', (err) => demux.destroy(err));
  raw.pipe(demux);
  return {
    stdout: demux,
    async result() {
      // The output ends a moment before the engine has reaped the process: until then no exit code.
      let info = (await exec.inspect()) as { ExitCode: number | null; Running: boolean };
      for (let waited = 0; info.Running && waited < EXIT_WAIT_MS; waited += EXIT_POLL_MS) {
        await new Promise((resolve) => setTimeout(resolve, EXIT_POLL_MS));
        info = (await exec.inspect()) as typeof info;
      }
      return { exitCode: info.ExitCode, stderr: demux.stderr.toString('utf8') };
    },
  };
}

/** Reads a (small) command's whole stdout. */
async function execText(container: Docker.Container, cmd: string[]): Promise<string> {
  const run = await execInContainer(container, cmd);
  const chunks: Buffer[] = [];
  for await (const chunk of run.stdout) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * What the hold wrapper recorded at the script's end; undefined while the script runs. Shell
 * builtins only, like the wrapper.
 */
export async function readScriptEnd(container: Docker.Container): Promise<ScriptEnd | undefined> {
  const text = await execText(container, [
    '/bin/sh',
    '-c',
    `if [ -f ${END_MARKER} ]; then read -r l < ${END_MARKER} && printf '%s\\n' "$l"; fi`,
  ]);
  return parseScriptEnd(text);
}

/**
 * Stops a holding container's script as a cancel would (SIGTERM, SIGKILL after `graceSeconds`),
 * leaving its wrapper to record the end and hold; resolves once the end is recorded.
 */
export async function stopHeldScript(
  container: Docker.Container,
  graceSeconds: number,
  beat: () => void,
): Promise<ScriptEnd> {
  const ended = async (ms: number) => {
    const deadline = Date.now() + ms;
    for (;;) {
      beat();
      const end = await readScriptEnd(container);
      if (end || Date.now() >= deadline) return end;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };
  await execText(container, signalScriptCommand('TERM'));
  const graceful = await ended(graceSeconds * 1000);
  if (graceful) return graceful;
  await execText(container, signalScriptCommand('KILL'));
  const killed = await ended(10_000);
  if (!killed) throw new Error('the script did not stop');
  return killed;
}
