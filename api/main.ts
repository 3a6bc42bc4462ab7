import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../domain/config.js';
import { createLogger } from '../domain/logger.js';
import { openLogStore } from '../log-store/open-log-store.js';
import { createApp } from './app.js';
import { apiTokenHashes, TOKEN_FILE } from './auth.js';

const config = loadConfig();
const logger = createLogger('api', config.HODEI_LOG_LEVEL);
const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
const logStore = await openLogStore(config, { onError: (err) => logger.warn({ err }, 'log store connection') });
const tokenHashes = apiTokenHashes(config);
if (config.HODEI_API_TOKENS.length === 0) logger.info({ file: `${config.HODEI_DATA_DIR}/${TOKEN_FILE}` }, 'no HODEI_API_TOKENS: using the token in the data dir');
const app = createApp({ client, logStore, config, logger, tokenHashes });

const server = serve({ fetch: app.fetch, port: config.HODEI_API_PORT, hostname: config.HODEI_API_HOST }, (info) => {
  logger.info({ url: `http://${config.HODEI_API_HOST}:${info.port}` }, 'api listening');
});

const shutdown = () => {
  server.close(() => {
    void connection.close().finally(() => logStore.close());
  });
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
