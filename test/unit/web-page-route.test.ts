import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../api/app.js';
import { apiToken } from '../../api/auth.js';
import { webApp } from '../../api/web.js';
import { loadConfig } from '../../domain/config.js';

const dir = mkdtempSync(path.join(tmpdir(), 'hodei-web-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = loadConfig({
  HODEI_DATA_DIR: dir,
  HODEI_INSTANCE_ID: 'unit',
  HODEI_TEMPORAL_UI_URL: 'http://ui.example:8233',
});

function built(): string {
  const dist = path.join(dir, 'dist');
  mkdirSync(path.join(dist, 'assets'), { recursive: true });
  writeFileSync(
    path.join(dist, 'index.html'),
    '<head><meta name="hodei-config" content="{}" /><script src="/assets/a-1.js"></script></head>',
  );
  writeFileSync(path.join(dist, 'assets', 'a-1.js'), 'console.log(1)');
  return dist;
}

describe('the web page route', () => {
  it('serves the page with its settings and a strict CSP, and hashed assets', async () => {
    const app = webApp({ config, dist: built() });
    const page = await app.request('/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain(
      'content="{&quot;temporalUiUrl&quot;:&quot;http://ui.example:8233&quot;,&quot;namespace&quot;:&quot;default&quot;}"',
    );
    const asset = await app.request('/assets/a-1.js');
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toContain('text/javascript');
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect((await app.request('/assets/..%2Findex.html')).status).toBe(404);
    expect((await app.request('/assets/missing.js')).status).toBe(404);
  });

  it('says how to build it when it is not built', async () => {
    const res = await webApp({ config, dist: path.join(dir, 'nothing') }).request('/');
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('npm run setup');
  });

  it('is public in the API, while the JSON routes keep requiring a token', async () => {
    // A page of this test's own: whether set-up built the real one yet is no concern here.
    const app = createApp({
      client: {} as never,
      logStore: {} as never,
      config,
      logger: pino({ level: 'silent' }),
      tokens: [apiToken('a-token-of-sixteen-chars')],
      dist: built(),
    });
    const page = await app.request('/');
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script src="/assets/a-1.js"></script>');
    expect((await app.request('/jobs')).status).toBe(401);
    expect((await app.request('/openapi.json')).status).toBe(401);
  });
});
