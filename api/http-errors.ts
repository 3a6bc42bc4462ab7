import { STATUS_CODES, type Server } from 'node:http';
import type { Http2SecureServer, Http2Server } from 'node:http2';
import type { Duplex } from 'node:stream';
import { errorBody } from './errors.js';

/** What Node's HTTP parser reports, by error code, as status and the one error shape's code. */
const PARSE_ERRORS: Record<string, [status: number, code: string, message: string]> = {
  HPE_HEADER_OVERFLOW: [431, 'headers_too_large', 'request headers too large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'payload_too_large', 'chunk extensions too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout', 'the request took too long to arrive'],
};

/** The raw HTTP answer to a request Node could not parse: the one JSON error shape, then close. */
export function clientErrorResponse(errCode: string | undefined): string {
  const [status, code, message] = PARSE_ERRORS[errCode ?? ''] ?? [400, 'invalid_request', 'malformed HTTP request'];
  const body = JSON.stringify(errorBody(code, message));
  return [
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}

/**
 * Makes the server answer a request its HTTP parser refuses (a bad Content-Length, headers over
 * the limit, a timeout) in the API's one error shape instead of Node's bare status line. Like
 * Node's own handler, it writes only when no answer to an earlier request on the connection is
 * under way (that would corrupt it), and closes the connection.
 */
export function answerClientErrors(server: Server | Http2Server | Http2SecureServer): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    socket.end(clientErrorResponse(err.code));
  });
}
