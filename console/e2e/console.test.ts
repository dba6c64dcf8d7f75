import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { BrowserContext, Locator, Page } from 'playwright-core';

import { ingestStream } from '../../collectors/file-collector';
import { initialAdminPasswordFile } from '../../appliance/identity/service';
import { startTestAppliance, type TestAppliance } from '../../appliance/testing/harness';
import {
  buildConsole,
  consoleDir,
  expectCount,
  expectText,
  launchChromium,
  watchPage,
  type PageWatch,
} from './browser';

const fixtureFile = fileURLToPath(new URL('./fixtures/sshd-brute-force.log', import.meta.url));

/** Source address of every "Failed password" line in the fixture. */
const attackerIp = '203.0.113.77';
const failedPasswordLines = fs
  .readFileSync(fixtureFile, 'utf8')
  .split('\n')
  .filter((line) => line.includes('Failed password')).length;

/** Set E2E_SCREENSHOT_DIR to a directory outside the repository to keep a PNG of each page. */
const screenshotDir = process.env.E2E_SCREENSHOT_DIR;

const newPassword = 'console-e2e-password-1';

describe('SOC console in Chromium @integration @e2e', function () {
  this.timeout(240_000);

  let testAppliance: TestAppliance;
  let context: BrowserContext;
  let page: Page;
  let userDataDir: string;
  let origin: string;
  let watch: PageWatch;

  before(async function () {
    if (!fs.existsSync(path.join(consoleDir, 'dist', 'index.html'))) buildConsole();

    testAppliance = await startTestAppliance({ search: true });
    origin = new URL(testAppliance.appliance.url).origin;

    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'console-e2e-chromium-'));
    context = await launchChromium(userDataDir);
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(15_000);

    watch = watchPage(context, page, origin);
  });

  after(async function () {
    await context?.close();
    if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
    await testAppliance?.close();
  });

  it('replaces the one-time password at first sign-in', async function () {
    const passwordFile = path.join(
      testAppliance.appliance.config.secretsDir,
      initialAdminPasswordFile,
    );
    const oneTimePassword = fs.readFileSync(passwordFile, 'utf8').trim();

    await page.goto(origin);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await screenshot('login');

    await page.getByTestId('login-username').fill('admin');
    await page.getByTestId('login-password').fill('not-the-password');
    await page.getByTestId('login-submit').click();
    await expectText(page.getByTestId('login-error'), /Invalid credentials/);

    await page.getByTestId('login-password').fill(oneTimePassword);
    await page.getByTestId('login-submit').click();
    await page.getByRole('heading', { name: 'Change your password' }).waitFor();

    await page.getByTestId('password-current').fill(oneTimePassword);
    await page.getByTestId('password-new').fill('short');
    await page.getByTestId('password-confirm').fill('shorter');
    await page.getByTestId('password-submit').click();
    await expectText(page.getByTestId('field-error-confirm'), /do not match/);

    // The appliance's own validation rejects it with a problem that names body.newPassword.
    await page.getByTestId('password-confirm').fill('short');
    await page.getByTestId('password-submit').click();
    await expectText(page.getByTestId('field-error-newPassword'), /at least \d+ characters/);
    await screenshot('change-password-error');

    await page.getByTestId('password-new').fill(newPassword);
    await page.getByTestId('password-confirm').fill(newPassword);
    await page.getByTestId('password-submit').click();

    await expectText(page.getByTestId('current-user'), 'admin');
    await expectText(page.getByTestId('current-role'), 'admin');
    // The entry appears once GET /access/me has returned.
    await page.getByTestId('nav-alerts').waitFor({ state: 'visible' });
  });

  it('creates, lists and opens a prompt', async function () {
    const title = `Refund policy assistant ${Date.now()}`;
    const firstBody = 'You answer questions about the refund policy.\nNever promise a refund.';

    await page.getByTestId('nav-prompts').click();
    await page.getByTestId('new-prompt').click();
    await page.getByTestId('prompt-title').fill('   ');
    await page.getByTestId('prompt-body').fill(firstBody);
    await page.getByTestId('prompt-save').click();
    await page.getByTestId('field-error-title').waitFor();

    await page.getByTestId('prompt-title').fill(title);
    await page.getByTestId('prompt-tags').fill('support, refunds');
    await page.getByTestId('prompt-description').fill('Used by the support chat.');
    await screenshot('new-prompt');
    await page.getByTestId('prompt-save').click();

    await expectText(page.getByTestId('prompt-heading'), title);
    await expectText(page.getByTestId('prompt-body-text'), firstBody);

    await page.getByTestId('back-to-prompts').click();
    const row = page.getByTestId('prompt-row').filter({ hasText: title });
    await row.waitFor();
    await expectText(row.getByTestId('prompt-latest-version'), 'v1');
    await screenshot('prompt-list');

    await row.getByTestId('prompt-link').click();
    await expectText(page.getByTestId('prompt-heading'), title);
    await expectText(page.getByTestId('shown-version'), /version 1\b/);
  });

  it('adds a version, shows v1, archives', async function () {
    const secondBody = 'You answer questions about the refund policy of 2027.';

    await page.getByTestId('new-version').click();
    await page.getByTestId('version-body').fill(secondBody);
    await page.getByTestId('version-note').fill('Policy of 2027');
    await page.getByTestId('version-save').click();

    await expectText(page.getByTestId('shown-version'), /version 2\b/);
    await expectText(page.getByTestId('prompt-body-text'), secondBody);
    await expectCount(page.getByTestId('version-row'), 2);
    await screenshot('prompt-view');

    await page
      .locator('[data-testid="version-row"][data-version="1"]')
      .getByTestId('version-link')
      .click();
    await expectText(page.getByTestId('shown-version'), /version 1\b/);
    await page.getByTestId('older-version-badge').waitFor();
    await expectText(page.getByTestId('prompt-body-text'), /Never promise a refund/);
    assert.match(page.url(), /\?version=1$/);
    await screenshot('prompt-older-version');

    await page.getByTestId('archive-prompt').click();
    await page.getByTestId('archive-confirm').click();
    await page.getByTestId('prompt-archived-badge').waitFor();
    assert.equal(await page.getByTestId('new-version').count(), 0);
  });

  it('shows the sshd brute-force alert and its events', async function () {
    const events = testAppliance.appliance.events;
    assert.ok(events, 'the test appliance runs with search and detections');

    const report = await ingestStream({
      input: fs.createReadStream(fixtureFile),
      sourceName: `e2e-${Date.now()}-auth.log`,
      pipeline: events.pipeline,
      rejectedFile: path.join(testAppliance.dataDir, 'e2e-rejected.jsonl'),
    });
    assert.equal(report.rejected, 0);
    await events.pipeline.drain(30_000);

    // Detections also run on a timer, but running them here makes the alert appear now.
    await events.detections.runOnce();

    await page.getByTestId('nav-alerts').click();
    await page.getByRole('heading', { name: 'Alerts', level: 1 }).waitFor();
    const alertRow = page.getByTestId('alert-row').filter({ hasText: attackerIp });
    await waitForRow(page, alertRow);

    assert.equal(await alertRow.getAttribute('data-rule-id'), 'auth.brute_force');
    await expectText(alertRow.getByTestId('alert-status'), 'Open');
    const listedCount = Number(await alertRow.getByTestId('alert-event-count').textContent());
    assert.ok(listedCount >= failedPasswordLines, `the alert counts ${listedCount} events`);
    await screenshot('alert-list');

    await page.getByTestId('filter-rule').selectOption('auth.brute_force');
    await page.waitForURL(/ruleId=auth\.brute_force/);
    await page.getByTestId('filter-status').selectOption('open');
    await page.waitForURL(/status=open/);
    await alertRow.waitFor();
    await page.reload();
    assert.equal(await page.getByTestId('filter-rule').inputValue(), 'auth.brute_force');
    assert.equal(await page.getByTestId('filter-status').inputValue(), 'open');
    await screenshot('alert-list-filtered');

    await alertRow.getByTestId('alert-link').click();
    await expectText(page.getByTestId('alert-heading'), 'Brute-force login attempts');
    await expectText(page.getByTestId('alert-entity'), attackerIp);
    await expectText(page.getByTestId('alert-rule-id'), 'auth.brute_force');
    await expectText(page.getByTestId('alert-events-count'), /Showing \d+ of \d+ events/);

    const rows = page.getByTestId('event-row');
    const shownEvents = await rows.count();
    assert.ok(
      shownEvents >= failedPasswordLines,
      `the page lists ${shownEvents} triggering events`,
    );
    for (const ip of await rows.getByTestId('event-source-ip').allTextContents()) {
      assert.equal(ip, attackerIp);
    }
    for (const outcome of await rows.getByTestId('event-outcome').allTextContents()) {
      assert.equal(outcome.trim(), 'failure');
    }
    await expectText(rows.first().getByTestId('event-message'), /Failed password|Invalid user/);
    await screenshot('alert-detail');
  });

  it('moves an acknowledged alert out of the open list', async function () {
    await page.getByTestId('alert-set-acknowledged').click();
    await expectText(page.getByTestId('alert-status-notice'), /acknowledged/);
    await expectText(page.getByTestId('alert-status'), 'Acknowledged');
    await screenshot('alert-acknowledged');

    await page.goto(`${origin}/#/alerts?status=open&ruleId=auth.brute_force`);
    await page.getByTestId('alerts-empty').waitFor();

    await page.getByTestId('filter-status').selectOption('acknowledged');
    await expectCount(page.getByTestId('alert-row'), 1);
  });

  it('names the invalid filter field', async function () {
    await page.goto(`${origin}/#/alerts?severity=urgent`);
    await page.getByTestId('alerts-error').waitFor();
    await page.getByTestId('field-error-severity').waitFor();
    assert.equal(await page.getByTestId('filter-severity').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.getByTestId('filter-severity').inputValue(), 'urgent');
    await screenshot('alert-filter-error');
  });

  it('shows an auditor alerts read-only and no prompts', async function () {
    const adminClient = testAppliance.anonymous();
    const login = await adminClient.post('/auth/login', {
      username: 'admin',
      password: newPassword,
    });
    assert.equal(login.status, 200);
    const initialPassword = 'auditor-initial-password-1';
    const created = await adminClient.post('/users', {
      username: 'auditor-e2e',
      password: initialPassword,
      role: 'auditor',
    });
    assert.equal(created.status, 201);

    await page.getByTestId('logout').click();
    await expectText(page.getByTestId('login-notice'), /signed out/);
    await page.getByTestId('login-username').fill('auditor-e2e');
    await page.getByTestId('login-password').fill(initialPassword);
    await page.getByTestId('login-submit').click();
    await page.getByTestId('password-current').fill(initialPassword);
    await page.getByTestId('password-new').fill('auditor-own-password-1');
    await page.getByTestId('password-confirm').fill('auditor-own-password-1');
    await page.getByTestId('password-submit').click();
    await expectText(page.getByTestId('current-role'), 'auditor');

    await page.goto(`${origin}/#/`);
    await page.getByRole('heading', { name: 'Alerts', level: 1 }).waitFor();
    assert.equal(await page.getByTestId('nav-prompts').count(), 0);

    await page
      .getByTestId('alert-row')
      .filter({ hasText: attackerIp })
      .getByTestId('alert-link')
      .click();
    await page.getByTestId('alert-read-only').waitFor();
    assert.equal(await page.locator('[data-testid^="alert-set-"]').count(), 0);
    await expectText(page.getByTestId('alert-events-count'), /Showing \d+ of \d+ events/);
    assert.ok((await page.getByTestId('event-row').count()) >= failedPasswordLines);
    await screenshot('alert-detail-auditor');

    await page.goto(`${origin}/#/prompts`);
    await page.getByTestId('no-access').waitFor();
  });

  it('loads nothing from other hosts and breaks no CSP rule', function () {
    assert.deepEqual(watch.foreignRequests, []);
    assert.deepEqual(watch.pageProblems, []);
  });

  async function screenshot(name: string) {
    if (!screenshotDir) return;
    fs.mkdirSync(screenshotDir, { recursive: true });
    await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true });
  }
});

/** Reloads the alert list until `row` shows, for at most 30 s. */
async function waitForRow(page: Page, row: Locator) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if ((await row.count()) > 0) return;
    if (Date.now() > deadline)
      throw new Error('the brute-force alert did not appear in the alert list within 30 s');
    await page.waitForTimeout(1_000);
    await page.getByTestId('alerts-refresh').click();
  }
}
