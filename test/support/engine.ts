import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { waitFor } from './wait.js';

/**
 * A second (third…) Docker engine on this machine, standing for another host: its own socket,
 * data root, exec root and pid file, no bridge, no iptables. Stop and start it to play a host
 * going away and coming back.
 */
export class ExtraEngine {
  readonly dir: string;
  readonly socket: string;
  readonly dockerHost: string;
  readonly docker: Docker;
  private process?: ChildProcess;

  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'hodei-engine-'));
    this.socket = path.join(this.dir, 'docker.sock');
    this.dockerHost = `unix://${this.socket}`;
    this.docker = new Docker({ socketPath: this.socket });
  }

  /** Starts the engine; fails as soon as dockerd exits, with the end of its log. */
  async start(): Promise<void> {
    mkdirSync(path.join(this.dir, 'exec'), { recursive: true });
    const logPath = path.join(this.dir, 'dockerd.log');
    const log = openSync(logPath, 'a');
    const child = spawn(
      'dockerd',
      [
        '--host',
        this.dockerHost,
        '--data-root',
        path.join(this.dir, 'data'),
        '--exec-root',
        path.join(this.dir, 'exec'),
        '--pidfile',
        path.join(this.dir, 'docker.pid'),
        '--bridge=none',
        '--iptables=false',
        '--ip-forward=false',
      ],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
    this.process = child;
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    let gone = false;
    void exited.then(() => (gone = true));
    const failure = (what: string) => {
      const tail = readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-40).join('\n');
      return new Error(`${what}\n--- last 40 lines of ${logPath} ---\n${tail}\n---`);
    };
    const answered = await waitFor(
      'the extra Docker engine to answer',
      async () => {
        if (gone) return false;
        await this.docker.ping();
        return true;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    ).catch((err: Error) => {
      throw failure(err.message);
    });
    if (!answered) throw failure('dockerd exited while starting');
  }

  /** Copies an image from the main engine (`docker save | docker load`), unless present. */
  async loadImage(image: string): Promise<void> {
    try {
      await this.docker.getImage(image).inspect();
      return;
    } catch {
      // Not there yet.
    }
    const archive = await new Docker().getImage(image).get();
    await new Promise<void>((resolve, reject) => {
      void this.docker.loadImage(archive).then((stream) => {
        stream.on('end', resolve);
        stream.on('error', reject);
        stream.resume();
      }, reject);
    });
  }

  /** Stops the engine (it stops its containers), as when a host goes away. */
  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
