import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { requiredScope } from '../../domain/api-scopes.js';
import { api, stack } from '../support/api-client.js';

interface OpenApiDoc {
  paths: Record<
    string,
    Record<string, { security?: Array<Record<string, string[]>>; responses: Record<string, unknown> }>
  >;
}

/** Every route the API describes, with `{param}`s filled in, and the scope its description names. */
async function describedRoutes(): Promise<Array<{ method: string; path: string; scopes?: string[] }>> {
  const res = await api('/openapi.json');
  expect(res.status).toBe(200);
  const doc = (await res.json()) as OpenApiDoc;
  return Object.entries(doc.paths).flatMap(([p, ops]) =>
    Object.entries(ops).map(([method, op]) => ({
      method: method.toUpperCase(),
      path: p.replace(/\{[^}]+\}/g, 'some-id'),
      scopes: op.security?.[0]?.bearerAuth,
    })),
  );
}

const bodyFor = (method: string) => (method === 'POST' ? '{"script":"echo scoped"}' : undefined);

const OPEN = ['/healthz', '/readyz'];
const WRONG = 'wrong-token-0123456789abcdef';

describe('API tokens', () => {
  it('refuses every route but /healthz and /readyz without a token or with a wrong one: 401, one error shape', async () => {
    const routes = [...(await describedRoutes()), { method: 'GET', path: '/openapi.json' }];
    expect(routes.length).toBeGreaterThan(5);
    for (const { method, path: p } of routes) {
      if (OPEN.includes(p)) continue;
      for (const authorization of ['', `Bearer ${WRONG}`, `Basic ${Buffer.from('a:b').toString('base64')}`, 'Bearer']) {
        const res = await api(p, {
          method,
          headers: { authorization, 'content-type': 'application/json' },
          body: method === 'POST' ? '{"script":"echo no"}' : undefined,
        });
        expect(res.status, `${method} ${p} with "${authorization}"`).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe('unauthorized');
      }
    }
  });

  it('answers /healthz and /readyz without a token', async () => {
    for (const p of OPEN) {
      expect((await fetch(`${stack().apiUrl}${p}`)).status, p).toBe(200);
    }
  });

  it('accepts the configured token on every described route', async () => {
    for (const { method, path: p } of await describedRoutes()) {
      if (method !== 'GET') continue;
      const res = await api(p);
      expect(res.status, `GET ${p}`).not.toBe(401);
      await res.body?.cancel();
    }
  });

  it("scopes: a token lacking the route's scope gets 403 in the one error shape; with it, it passes", async () => {
    const routes = (await describedRoutes()).filter((r) => !OPEN.includes(r.path));
    expect(routes.map((r) => `${r.method} ${r.path}`)).toEqual(
      expect.arrayContaining(['POST /jobs', 'POST /jobs/some-id/cancel', 'GET /jobs']),
    );
    for (const { method, path: p, scopes } of routes) {
      const needed = requiredScope(method, p);
      // The description names the scope the API enforces.
      expect(scopes, `${method} ${p}`).toEqual([needed]);
      for (const [scope, token] of Object.entries(stack().scopedTokens)) {
        const res = await api(p, {
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: bodyFor(method),
        });
        if (scope === needed) {
          expect([401, 403], `${method} ${p} with a ${scope} token`).not.toContain(res.status);
          await res.body?.cancel();
        } else {
          expect(res.status, `${method} ${p} with a ${scope} token`).toBe(403);
          const body = (await res.json()) as { error: { code: string; message: string } };
          expect(body.error).toEqual({ code: 'forbidden', message: `this API token lacks the "${needed}" scope` });
        }
      }
    }
  });

  it('scopes: a token configured without scopes (the data-dir token too) may do everything', async () => {
    for (const { method, path: p } of await describedRoutes()) {
      const res = await api(p, { method, headers: { 'content-type': 'application/json' }, body: bodyFor(method) });
      expect([401, 403], `${method} ${p}`).not.toContain(res.status);
      await res.body?.cancel();
    }
  });

  it('never writes a token to the logs', async () => {
    // Requests with the right and a wrong token happened above (and in every other test).
    expect((await api('/jobs/whatever', { headers: { authorization: `Bearer ${WRONG}` } })).status).toBe(401);
    expect((await api('/jobs/whatever')).status).toBe(404);
    for (const name of ['api', 'worker']) {
      const text = readFileSync(path.join(stack().logDir, `${name}.log`), 'utf8');
      expect(text.length, `${name}.log has lines`).toBeGreaterThan(0);
      expect(text).not.toContain(stack().apiToken);
      for (const token of Object.values(stack().scopedTokens)) expect(text).not.toContain(token);
      expect(text).not.toContain(WRONG);
    }
  });
});
