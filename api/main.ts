import { serve } from '@hono/node-server';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../domain/config.js';
import { createLogger } from '../domain/logger.js';
import { AesGcmPayloadCodec, CODEC_KEY_FILE, codecKeys } from '../domain/payload-codec.js';
import { openLogStore } from '../log-store/open-log-store.js';
import { createApp } from './app.js';
import { apiTokens, TOKEN_FILE } from './auth.js';
import { answerClientErrors } from './http-errors.js';
import { serveCodec } from './codec-server.js';

const config = loadConfig();
const logger = createLogger('api', config.HODEI_LOG_LEVEL);
const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
// Every payload the API puts in Temporal (a job's input with its secrets, its memo) is encrypted.
const codec = new AesGcmPayloadCodec(codecKeys(config));
if (!config.HODEI_CODEC_KEY) logger.info({ file: `${config.HODEI_DATA_DIR}/${CODEC_KEY_FILE}` }, 'no HODEI_CODEC_KEY: using the key in the data dir');
const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE, dataConverter: { payloadCodecs: [codec] } });
const logStore = await openLogStore(config, { onError: (err) => logger.warn({ err }, 'log store connection') });
const tokens = apiTokens(config);
if (config.HODEI_API_TOKENS.length === 0) logger.info({ file: `${config.HODEI_DATA_DIR}/${TOKEN_FILE}` }, 'no HODEI_API_TOKENS: using the token in the data dir');
const app = createApp({ client, logStore, config, logger, tokens });

const server = serve({ fetch: app.fetch, port: config.HODEI_API_PORT, hostname: config.HODEI_API_HOST }, (info) => {
  logger.info({ url: `http://${config.HODEI_API_HOST}:${info.port}` }, 'api listening');
});
answerClientErrors(server);

// The Web UI's codec endpoint. Here rather than in the worker: one per installation's API (the
// process people reach), not one per Docker host, and a worker never serves HTTP by default.
const codecServer =
  config.HODEI_CODEC_PORT === 'off'
    ? undefined
    : serveCodec({ codec, allowedOrigins: config.HODEI_CODEC_CORS_ORIGINS, port: config.HODEI_CODEC_PORT, logger });

const shutdown = () => {
  codecServer?.close();
  server.close(() => {
    void connection.close().finally(() => logStore.close());
  });
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
