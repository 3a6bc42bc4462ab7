import type { Config } from '../domain/config.js';
import type { LogStore } from './log-store.js';
import { PostgresLogStore } from './postgres-log-store.js';
import { SqliteLogStore } from './sqlite-log-store.js';

/** Opens the log store `HODEI_LOG_STORE` names: the embedded SQLite file, or a PostgreSQL database. */
export async function openLogStore(
  config: Pick<Config, 'HODEI_LOG_STORE' | 'HODEI_DATA_DIR'>,
  options: { onError?: (err: unknown) => void } = {},
): Promise<LogStore> {
  if (config.HODEI_LOG_STORE === 'sqlite') return SqliteLogStore.inDataDir(config.HODEI_DATA_DIR);
  return PostgresLogStore.open(config.HODEI_LOG_STORE, options);
}
