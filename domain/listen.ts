import { rename, writeFile } from 'node:fs/promises';
import type { AddressInfo, Server } from 'node:net';
import type { Logger } from 'pino';

/** Listens on `host:port` (0: a port the system picks); resolves to the port bound. */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Listens, or ends the process with one message naming the setting to change: a port that is
 * taken must stop a start-up at once, not leave a process running without its server.
 */
export async function listenOrExit(
  server: Server,
  { port, host, setting, logger }: { port: number; host: string; setting: string; logger: Logger },
): Promise<number> {
  try {
    return await listen(server, port, host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const problem =
      code === 'EADDRINUSE'
        ? 'is in use'
        : code === 'EACCES'
          ? 'may not be bound by this user'
          : `cannot be bound (${code ?? 'error'})`;
    // A short line (no stack): the message is what a person reads. pino writes to stdout
    // synchronously, so it is out before the exit.
    logger.fatal({ code, host, port, setting }, `${host}:${port} ${problem}: set ${setting} to another port`);
    process.exit(1);
  }
}

/**
 * How a process tells its launcher the ports it bound. With `HODEI_PORTS_FILE` set, once every
 * server of the process listens, it writes `{"<server>": <port>, …}` there, atomically (a
 * temporary file renamed over it: a reader sees all of it or nothing). A launcher asks for port 0
 * (the system picks a free port as it binds: nothing can take it in between) and reads the real
 * ports from the file; the test stack does. Unset: nothing is written.
 */
export async function writePortsFile(file: string | undefined, ports: Record<string, number>): Promise<void> {
  if (!file) return;
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(ports)}\n`);
  await rename(temporary, file);
}
