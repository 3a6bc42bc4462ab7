/**
 * How a job that declares artifacts keeps its files for collection. The working directory is a
 * tmpfs that is gone once the container stops, and Docker's archive endpoint never sees a tmpfs
 * (it reads the container's layers and volumes), so the files are collected from the running
 * container: its command runs the script under a small POSIX `sh` wrapper that, once the script
 * has ended, stops what the script left running, records the exit code and the container's cgroup
 * figures in END_MARKER, closes the output and holds (sleeps) until the collection is done and
 * the container is removed. The run activity learns the script's end from the marker (exec), not
 * from the container's exit.
 *
 * A cancel stops the container as before: the wrapper does not trap SIGTERM, so docker-init's
 * signal to the process group ends the wrapper and the script together.
 */

/** Written by the wrapper once the script has ended: `<exit code> <cpu ns> <max memory bytes>`. */
export const END_MARKER = '/run/lock/.hodei-end';
/** The wrapper's PID, written when it starts: a timeout stops every process but it (and PID 1). */
export const WRAPPER_PID = '/run/lock/.hodei-wrapper';

// Only shell builtins up to the hold, so any image with a /bin/sh runs it. `kill -KILL -1`
// reaches every process but PID 1 (docker-init) and the shell itself: the script's leftovers.
const HOLD_WRAPPER = [
  `echo $$ > ${WRAPPER_PID}`,
  '"$@"',
  'c=$?',
  'kill -KILL -1 2>/dev/null',
  'u=; m=',
  'read -r u < /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null',
  'read -r m < /sys/fs/cgroup/memory/memory.max_usage_in_bytes 2>/dev/null',
  `printf '%s %s %s\\n' "$c" "$u" "$m" > ${END_MARKER}`,
  'exec >/dev/null 2>&1 </dev/null',
  'while :; do sleep 3600; done',
].join('\n');

/** The container command of a job that holds for collection: the wrapper around the script's command. */
export function holdCommand(command: string[]): string[] {
  return ['/bin/sh', '-c', HOLD_WRAPPER, 'hodei-job', ...command];
}

/**
 * A shell command (builtins only) that sends `signal` to every process of the container but
 * PID 1, the wrapper and itself: at a job's deadline the script stops as on a cancel, while the
 * wrapper records its end and holds the working directory for collection.
 */
export function signalScriptCommand(signal: 'TERM' | 'KILL'): string[] {
  return [
    '/bin/sh',
    '-c',
    `read -r w < ${WRAPPER_PID}; for p in /proc/[0-9]*; do p=\${p#/proc/}; ` +
      `[ "$p" = 1 ] || [ "$p" = "$w" ] || [ "$p" = "$$" ] || kill -${signal} "$p" 2>/dev/null; done; true`,
  ];
}

/** What the wrapper recorded at the script's end. */
export interface ScriptEnd {
  exitCode: number;
  /** CPU time of the container's processes, ns (cgroup v1 `cpuacct.usage`); undefined where unreadable. */
  cpuNanos?: number;
  /** Peak memory (cgroup v1 `memory.max_usage_in_bytes`); undefined where unreadable. */
  maxMemoryBytes?: number;
}

/** Parses END_MARKER's content; undefined unless it is complete. */
export function parseScriptEnd(text: string): ScriptEnd | undefined {
  const match = /^(\d{1,3}) (\d*) (\d*)\n/.exec(text);
  if (!match) return undefined;
  const num = (s: string | undefined) => (s ? Number(s) : undefined);
  return { exitCode: Number(match[1]), cpuNanos: num(match[2]), maxMemoryBytes: num(match[3]) };
}
