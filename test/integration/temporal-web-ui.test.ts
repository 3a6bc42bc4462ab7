import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../support/browser.js';
import { ROOT } from '../support/stack.js';
import { logs, stack, submit, waitForEnd, waitForNoContainer, waitForRunningContainer } from '../support/api-client.js';

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

describe('the Temporal Web UI', () => {
  it("decrypts a job's payloads through the codec endpoint (CORS for its origin), showing the input", async () => {
    const secret = `ui-secret-${Date.now()}`;
    const job = await submit({ script: 'echo "$UI_SECRET"', secrets: { UI_SECRET: secret } });
    await waitForEnd(job.id);
    const { temporalUiUrl, codecUrl, namespace } = stack();
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    try {
      // (The UI adds a query: /decode?preserveStorageRefs=true.)
      const decoded = page.waitForResponse(
        (r) => r.url().startsWith(`${codecUrl}/decode`) && r.request().method() === 'POST',
        { timeout: 30_000 },
      );
      await page.goto(`${temporalUiUrl}/namespaces/${namespace}/workflows/${job.id}`);
      const response = await decoded;
      expect(response.status()).toBe(200);
      expect(response.request().headers()['x-namespace']).toBe(namespace);
      // The workflow's input, decrypted in the browser, secret included (this UI is loopback only).
      await page.getByText(secret, { exact: false }).first().waitFor({ timeout: 30_000 });
    } finally {
      await page.close();
    }
  });

  it("its Request Cancellation button stops the job's container like any other cancel", async () => {
    const job = await submit({ script: 'while true; do echo tick; sleep 0.1; done', cancelGraceSeconds: 1 });
    await waitForRunningContainer(job.id);

    const { temporalUiUrl, namespace } = stack();
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${temporalUiUrl}/namespaces/${namespace}/workflows/${job.id}`);
    await page.getByRole('button', { name: 'Request Cancellation' }).click();
    await page.locator('button:visible', { hasText: 'Confirm' }).click();

    expect(await waitForNoContainer(job.id, 30_000)).toBeLessThan(30_000);
    const done = await waitForEnd(job.id, 30_000);
    expect(done.state).toBe('CANCELLED');
    expect(done.workflow.status).toBe('CANCELLED');
    const output = await logs(job.id);
    expect(output).toContain('tick');

    // The UI shows it too.
    await page.reload();
    await page.getByText('Canceled', { exact: false }).first().waitFor({ timeout: 30_000 });
    const dir = path.join(ROOT, 'test/artifacts');
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: path.join(dir, 'temporal-ui-cancelled.png') });
    await page.close();
  });
});
