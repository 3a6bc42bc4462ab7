import { createServer, type Server } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from 'pino';
import { z } from 'zod';
import { listenOrExit } from '../domain/listen.js';
import { errorBody } from './errors.js';

/** The only address the codec endpoint listens on: it decrypts for anyone who can reach it. */
export const CODEC_HOST = '127.0.0.1';

// Temporal allows 2 MiB per payload; the Web UI sends a page of them at once.
const MAX_BODY_BYTES = 32 * 1024 * 1024;

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
/** Temporal's codec server protocol: payloads in proto3 JSON (bytes as base64). */
const PayloadsBody = z.object({
  payloads: z.array(z.object({ metadata: z.record(z.string(), base64).optional(), data: base64.optional() })),
});
type JsonPayload = z.infer<typeof PayloadsBody>['payloads'][number];

const fromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});

const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? []).toString('base64'),
});

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** Browser origins allowed to call it (the Web UI's); a request from any other origin is refused. */
  allowedOrigins: readonly string[];
  /** The port it listens on: requests must name it in `Host` (no DNS rebinding). */
  port: number;
}

/**
 * The codec endpoint of Temporal's codec server protocol, for the Web UI and `temporal
 * --codec-endpoint`: `POST /decode` and `POST /encode` take and give `{payloads: [...]}`. It has no
 * token (the UI cannot send one unless configured to), so it is for loopback only: the server
 * binds 127.0.0.1, only requests addressed to 127.0.0.1 or localhost are answered, and browsers
 * get CORS only for the UI's origin — a page of another origin is refused outright.
 */
export function codecApp({ codec, allowedOrigins, port }: CodecServerOptions) {
  const app = new Hono();
  const origins = new Set(allowedOrigins);
  const hosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`]);

  app.use('*', async (c, next) => {
    const host = c.req.header('host');
    if (host !== undefined && !hosts.has(host.toLowerCase())) {
      return c.json(errorBody('forbidden', 'the codec endpoint answers only at 127.0.0.1 or localhost'), 403);
    }
    const origin = c.req.header('origin');
    if (origin !== undefined) {
      if (!origins.has(origin))
        return c.json(errorBody('forbidden', `origin ${origin} may not use the codec endpoint`), 403);
      c.header('Access-Control-Allow-Origin', origin);
      c.header('Vary', 'Origin');
    }
    if (c.req.method === 'OPTIONS') {
      c.header('Access-Control-Allow-Methods', 'POST, OPTIONS');
      c.header('Access-Control-Allow-Headers', 'Content-Type, X-Namespace');
      c.header('Access-Control-Max-Age', '600');
      return c.body(null, 204);
    }
    return next();
  });
  app.use(
    '*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => c.json(errorBody('payload_too_large', 'request body too large'), 413),
    }),
  );

  const route = (path: '/encode' | '/decode', run: (payloads: Payload[]) => Promise<Payload[]>) =>
    app.post(path, async (c) => {
      const parsed = PayloadsBody.safeParse(await c.req.json().catch(() => undefined));
      if (!parsed.success)
        return c.json(
          errorBody('invalid_request', 'expected {"payloads": [{"metadata": {…}, "data": "<base64>"}]}'),
          400,
        );
      try {
        const payloads = await run(parsed.data.payloads.map(fromJson));
        return c.json({ payloads: payloads.map(toJson) }, 200);
      } catch (err) {
        // Tampered with, or made with a key this installation does not hold.
        return c.json(errorBody('invalid_request', (err as Error).message), 400);
      }
    });
  route('/encode', (p) => codec.encode(p));
  route('/decode', (p) => codec.decode(p));
  app.notFound((c) => c.json(errorBody('not_found', 'POST /encode or /decode'), 404));
  return app;
}

/**
 * Serves the codec endpoint on 127.0.0.1:`port` (0: one the system picks); resolves once it
 * listens, with the port bound. A port in use ends the process with a message naming
 * HODEI_CODEC_PORT: the Web UI was told this port, so running on without it helps nobody.
 */
export async function serveCodec(
  options: CodecServerOptions & { logger: Logger },
): Promise<{ server: Server; port: number }> {
  const server = createServer();
  const port = await listenOrExit(server, {
    port: options.port,
    host: CODEC_HOST,
    setting: 'HODEI_CODEC_PORT',
    logger: options.logger,
  });
  // The app checks `Host` against the port bound, known only now; no request is read before
  // this runs (it follows the listen callback without a turn of the event loop).
  server.on('request', getRequestListener(codecApp({ ...options, port }).fetch));
  options.logger.info(
    { url: `http://${CODEC_HOST}:${port}`, port, origins: options.allowedOrigins },
    'codec endpoint listening',
  );
  return { server, port };
}
