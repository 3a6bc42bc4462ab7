import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Hono } from 'hono';
import type { Config } from '../domain/config.js';
import { errorBody } from './errors.js';

/** Where `scripts/build-web.sh` (run by set-up) puts the built page. */
export const WEB_DIST = path.resolve(import.meta.dirname, '../.tools/web');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/**
 * Only this page's own scripts; inline style attributes are allowed because ansi_up colours
 * 256-colour and truecolor text with them. The Temporal UI is a plain link.
 */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export interface WebDeps {
  config: Pick<Config, 'HODEI_TEMPORAL_UI_URL' | 'TEMPORAL_NAMESPACE'>;
  /** Built page directory; default WEB_DIST. */
  dist?: string;
}

/**
 * The web page at `/` and its assets at `/assets/*`. Both are public: the page holds no data and
 * asks the reader for an API token, which it sends on every JSON API call.
 */
export function webApp({ config, dist = WEB_DIST }: WebDeps) {
  const app = new Hono();
  const settings = JSON.stringify({
    temporalUiUrl: config.HODEI_TEMPORAL_UI_URL,
    namespace: config.TEMPORAL_NAMESPACE,
  });
  const attribute = settings.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

  app.get('/', async (c) => {
    let html: string;
    try {
      html = await readFile(path.join(dist, 'index.html'), 'utf8');
    } catch {
      return c.text('The web page is not built: run `npm run setup` (or scripts/build-web.sh).\n', 503);
    }
    c.header('Content-Security-Policy', CSP);
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Referrer-Policy', 'no-referrer');
    c.header('Cache-Control', 'no-cache');
    return c.html(
      html.replace('<meta name="hodei-config" content="{}" />', `<meta name="hodei-config" content="${attribute}" />`),
      200,
    );
  });

  app.get('/assets/:file', async (c) => {
    const file = c.req.param('file');
    const type = TYPES[path.extname(file)];
    if (!/^[\w.-]+$/.test(file) || !type) return c.json(errorBody('not_found', `no asset ${file}`), 404);
    try {
      const body = await readFile(path.join(dist, 'assets', file));
      c.header('Content-Type', type);
      c.header('X-Content-Type-Options', 'nosniff');
      // Vite puts a content hash in every asset name.
      c.header('Cache-Control', 'public, max-age=31536000, immutable');
      return c.body(body, 200);
    } catch {
      return c.json(errorBody('not_found', `no asset ${file}`), 404);
    }
  });

  return app;
}
