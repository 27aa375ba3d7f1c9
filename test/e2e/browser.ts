// Headless Chromium from Debian (`apt-get install -y chromium`), driven by playwright-core, with a
// fresh profile directory that is removed on close. Records what the page did that a test may
// want to check: console errors (CSP violations among them), uncaught errors and every request.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface RecordedRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  consoleErrors: string[];
  pageErrors: string[];
  requests: RecordedRequest[];
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  const profile = mkdtempSync(join(tmpdir(), 'circuitry-e2e-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 800 },
      deviceScaleFactor: 1,
      timezoneId: 'UTC',
      locale: 'en-GB',
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const b: Browser = {
    context,
    page,
    consoleErrors: [],
    pageErrors: [],
    requests: [],
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
  page.on('console', (m) => {
    if (m.type() === 'error') b.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => b.pageErrors.push(e.message));
  page.on('request', (r) => b.requests.push({ url: r.url(), method: r.method(), headers: r.headers() }));
  return b;
}
