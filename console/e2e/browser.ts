import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  chromium,
  type BrowserContext,
  type ConsoleMessage,
  type Locator,
  type Page,
} from 'playwright-core';

/** The console folder, which contains vite.config.ts and the built dist/. */
export const consoleDir = fileURLToPath(new URL('..', import.meta.url));

// Without the background-networking flags Chromium contacts hosts outside the test.
export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Starts headless Chromium with a profile in `userDataDir`, as every console e2e test does. */
export function launchChromium(userDataDir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: chromiumArgs,
    // The appliance serves a self-signed certificate.
    ignoreHTTPSErrors: true,
    viewport: { width: 1360, height: 900 },
    locale: 'en-US',
    timezoneId: 'UTC',
  });
}

/**
 * Builds console/dist the way `npm run build:console` does, in a separate Node.js process.
 * NOTE: inside this mocha process, which loads tsx, the Svelte compilation of `.svelte.ts`
 * modules failed with "Unexpected token" at the first `type` import; the cause is not known.
 */
export function buildConsole() {
  const viteCli = path.join(consoleDir, '..', 'node_modules', 'vite', 'bin', 'vite.js');
  execFileSync(
    process.execPath,
    [viteCli, 'build', '--config', path.join(consoleDir, 'vite.config.ts'), '--logLevel', 'warn'],
    { stdio: 'inherit' },
  );
}

/**
 * Chromium logs every HTTP error response as a console error. The test provokes some on
 * purpose (wrong password, invalid filter, the first session check); those are not problems.
 */
export function isExpectedFailedRequest(text: string): boolean {
  return /^Failed to load resource: the server responded with a status of (400|401)\b/.test(text);
}

/** What went wrong on a page: console errors, script errors and requests to other hosts. */
export interface PageWatch {
  pageProblems: string[];
  foreignRequests: string[];
}

/**
 * Records the problems of `page` while a test runs. CSP violations and script errors show up
 * as console errors, so any of them counts, except the failed requests a test provokes on
 * purpose: those that isExpectedFailedRequest accepts, and those `allow` accepts.
 */
export function watchPage(
  context: BrowserContext,
  page: Page,
  origin: string,
  allow: (message: ConsoleMessage) => boolean = () => false,
): PageWatch {
  const watch: PageWatch = { pageProblems: [], foreignRequests: [] };
  page.on('console', (message) => {
    if (message.type() !== 'error' || isExpectedFailedRequest(message.text())) return;
    if (allow(message)) return;
    watch.pageProblems.push(`${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => watch.pageProblems.push(error.message));

  // Downloads that the console creates in the page have `blob:` addresses of the same origin.
  context.on('request', (request) => {
    const url = request.url();
    const local = [`${origin}/`, 'data:', 'blob:'].some((prefix) => url.startsWith(prefix));
    if (!local) watch.foreignRequests.push(url);
  });
  return watch;
}

export async function expectText(locator: Locator, expected: string | RegExp) {
  await locator.first().waitFor();
  const deadline = Date.now() + 10_000;
  let text = '';
  while (Date.now() < deadline) {
    text = ((await locator.first().textContent()) ?? '').trim();
    if (typeof expected === 'string' ? text === expected : expected.test(text)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`expected ${String(expected)}, the page shows "${text}"`);
}

export async function expectCount(locator: Locator, expected: number) {
  const deadline = Date.now() + 10_000;
  let count = 0;
  while (Date.now() < deadline) {
    count = await locator.count();
    if (count === expected) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`expected ${expected} elements, the page shows ${count}`);
}

/** Signs in through the console's sign-in form, for an account without a second factor. */
export async function signIn(page: Page, username: string, password: string) {
  await page.getByTestId('login-username').fill(username);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await expectText(page.getByTestId('current-user'), username);
  // Pages and navigation follow GET /access/me, which returns after the sign-in.
  await expectCount(page.getByTestId('access-loading'), 0);
}

export async function signOut(page: Page) {
  await page.getByTestId('logout').click();
  await page.getByTestId('login-submit').waitFor();
}

/** A Chromium profile with one page watched for problems, as each console test suite uses it. */
export interface ConsoleBrowser {
  context: BrowserContext;
  page: Page;
  watch: PageWatch;
  /** Saves a full-page PNG under E2E_SCREENSHOT_DIR when that variable is set. */
  screenshot(name: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Launches Chromium with a fresh profile named after `label`, watches its page against
 * `origin` (see watchPage for `allow`) and opens the console there.
 */
export async function openConsole(
  label: string,
  origin: string,
  allow?: (message: ConsoleMessage) => boolean,
): Promise<ConsoleBrowser> {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), `console-${label}-chromium-`));
  const context = await launchChromium(userDataDir);
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  const watch = watchPage(context, page, origin, allow);
  await page.goto(origin);

  return {
    context,
    page,
    watch,
    async screenshot(name) {
      // Set E2E_SCREENSHOT_DIR to a directory outside the repository to keep the PNGs.
      const directory = process.env.E2E_SCREENSHOT_DIR;
      if (!directory) return;
      fs.mkdirSync(directory, { recursive: true });
      const file = `${label}-${name.replace(/\W+/g, '-')}.png`;
      await page.screenshot({ path: path.join(directory, file), fullPage: true });
    },
    async close() {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
