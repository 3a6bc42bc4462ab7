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
  it("its Request Cancellation button stops the job's container like any other cancel", async () => {
    const job = await submit({ script: 'while true; do echo tick; sleep 0.1; done', cancelGraceSeconds: 1 });
    await waitForRunningContainer(job.id);

    const { temporalUiUrl, namespace } = stack();
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${temporalUiUrl}/namespaces/${namespace}/workflows/${job.id}`);
    await page.getByRole('button', { name: 'Request Cancellation' }).click();
    await page.locator('button:visible', { hasText: 'Confirm' }).click();

    expect(await waitForNoContainer(job.id, 10_000)).toBeLessThan(10_000);
    const done = await waitForEnd(job.id, 10_000);
    expect(done.state).toBe('CANCELLED');
    expect(done.workflow.status).toBe('CANCELLED');
    const output = await logs(job.id);
    expect(output).toContain('tick');

    // The UI shows it too.
    await page.reload();
    await page.getByText('Canceled', { exact: false }).first().waitFor({ timeout: 10_000 });
    const dir = path.join(ROOT, 'test/artifacts');
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: path.join(dir, 'temporal-ui-cancelled.png') });
    await page.close();
  });
});
