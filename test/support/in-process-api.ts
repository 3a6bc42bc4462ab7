import { Connection, type Client } from '@temporalio/client';
import { pino } from 'pino';
import { createApp } from '../../api/app.js';
import { apiToken } from '../../api/auth.js';
import { loadConfig } from '../../domain/config.js';
import { SqliteLogStore } from '../../log-store/sqlite-log-store.js';
import type { StackInfo } from './stack.js';
import { stackClient } from './temporal.js';

/**
 * The API in-process (`app.request`, no port) against a stack's real Temporal server and log
 * store, so a test can spy on the Temporal client and see what was (never) asked of it.
 */
export interface InProcessApi {
  app: ReturnType<typeof createApp>;
  /** The Temporal client the app uses (spy on `client.workflow.start` and the like). */
  client: Client;
  /** `app.request` with the stack's token unless `init.headers` sets one. */
  request(path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

export async function inProcessApi(s: StackInfo): Promise<InProcessApi> {
  const connection = await Connection.connect({ address: s.temporalAddress });
  const client = stackClient(connection, s);
  const logStore = SqliteLogStore.inDataDir(s.dataDir);
  const config = loadConfig({
    HODEI_DATA_DIR: s.dataDir,
    HODEI_INSTANCE_ID: s.instanceId,
    HODEI_TASK_QUEUE: s.taskQueue,
    HODEI_CODEC_KEY: s.codecKey,
  });
  const app = createApp({
    client,
    logStore,
    config,
    logger: pino({ level: 'silent' }),
    tokens: [apiToken(s.apiToken)],
  });
  return {
    app,
    client,
    request: async (path, init = {}) =>
      app.request(path, {
        ...init,
        headers: { authorization: `Bearer ${s.apiToken}`, ...(init.headers as Record<string, string>) },
      }),
    async close() {
      await connection.close();
      await logStore.close();
    },
  };
}
