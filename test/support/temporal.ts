import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Client, type Connection } from '@temporalio/client';
import { encryptingDataConverter, parseCodecKey } from '../../domain/payload-codec.js';
import { TEMPORAL_BIN, type StackInfo } from './stack.js';

const run = promisify(execFile);

/** A Temporal client of a test stack, with the stack's payload codec (its payloads are encrypted). */
export function stackClient(connection: Connection, info: Pick<StackInfo, 'codecKey' | 'namespace'>): Client {
  return new Client({
    connection,
    namespace: info.namespace,
    dataConverter: encryptingDataConverter([parseCodecKey(info.codecKey)]),
  });
}

/** Runs the `temporal` CLI against a test stack's server; resolves to its stdout. */
export async function temporalCli(
  info: Pick<StackInfo, 'temporalAddress' | 'namespace'>,
  args: string[],
): Promise<string> {
  const { stdout } = await run(
    TEMPORAL_BIN,
    [...args, '--address', info.temporalAddress, '--namespace', info.namespace],
    {
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return stdout;
}
