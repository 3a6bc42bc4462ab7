import { chromium, type Browser } from 'playwright-core';

/**
 * Debian's headless Chromium, driven by playwright-core, with no background traffic. Each launch
 * gets a fresh, temporary user-data dir from playwright itself.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}
