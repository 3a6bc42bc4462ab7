import type { MiddlewareHandler } from 'hono';
import { errorBody } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Refuses a request body that is not valid UTF-8 with a 400. JSON is UTF-8; a lenient decode
 * would turn each bad byte into U+FFFD and run a script other than the one sent. The route's JSON
 * validator then parses the same bytes (hono caches a body read once).
 */
export function strictUtf8Body(): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.raw.body === null) return next();
    // A failed read (the body limit, a connection gone) is answered by whoever answers it.
    const bytes = await c.req.arrayBuffer();
    try {
      utf8.decode(bytes);
    } catch {
      const message = 'the request body is not valid UTF-8';
      return c.json(errorBody('invalid_request', message, [{ path: '(body)', message }]), 400);
    }
    return next();
  };
}
