import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { Page } from 'playwright-core';

import type { ApiClient } from '../../appliance/testing/api-client';
import {
  adminTestPassword,
  startTestAppliance,
  type TestAppliance,
} from '../../appliance/testing/harness';
import {
  buildConsole,
  consoleDir,
  expectCount,
  expectText,
  type PageWatch,
  openConsole,
  type ConsoleBrowser,
} from './browser';

describe('Console access control, break-glass and review pages @integration @e2e', function () {
  this.timeout(240_000);

  let testAppliance: TestAppliance;
  let page: Page;
  let browser: ConsoleBrowser;
  let origin: string;
  let watch: PageWatch;

  /** The user who receives the custom role through a grant. */
  let grantee: { client: ApiClient; username: string };
  /** The analyst who opens break-glass access. */
  let analyst: { username: string; password: string };
  const customRole = `prompt-reader-${Date.now().toString(36)}`;

  before(async function () {
    if (!fs.existsSync(path.join(consoleDir, 'dist', 'index.html'))) buildConsole();

    testAppliance = await startTestAppliance();
    origin = new URL(testAppliance.appliance.url).origin;
    await testAppliance.admin();
    grantee = await testAppliance.userWithRole('auditor');
    analyst = await testAppliance.userWithRole('analyst');

    // Recovery returns 404 on purpose, because this appliance has no mail server.
    browser = await openConsole(
      'access',
      origin,
      (message) =>
        /status of 404\b/.test(message.text()) &&
        message.location().url.endsWith('/api/v1/auth/recovery'),
    );
    ({ page, watch } = browser);
    await signIn('admin', adminTestPassword);
  });

  afterEach(async function () {
    if (this.currentTest) await browser.screenshot(this.currentTest.title);
  });

  after(async function () {
    await browser?.close();
    await testAppliance?.close();
  });

  it('grants a custom role with expiry', async function () {
    assert.equal((await grantee.client.get('/prompts')).status, 403, 'before the grant');

    await page.getByTestId('nav-access').click();
    await page.getByRole('heading', { name: 'Access', level: 1 }).waitFor();

    // A bad name shows the appliance's message next to the field.
    await page.getByTestId('new-role').click();
    await page.getByTestId('role-name').fill('Bad Name');
    await page.getByTestId('role-save').click();
    await page.getByTestId('field-error-name').waitFor();

    await page.getByTestId('role-name').fill(customRole);
    await page.getByTestId('role-description').fill('Reads prompts for a compliance check.');
    await page.getByTestId('role-permission-prompts:read').check();
    await page.getByTestId('role-permission-folders:read').check();
    await page.getByTestId('role-save').click();
    await expectText(page.getByTestId('roles-notice'), `Role ${customRole} created.`);
    const roleRow = page.locator(`[data-testid="role-row"][data-role="${customRole}"]`);
    await expectText(roleRow.getByTestId('role-effective-permissions'), /prompts:read/);

    await page.getByTestId('new-grant').click();
    await page.getByTestId('grant-user').selectOption({ label: `${grantee.username} (auditor)` });
    await page.getByTestId('grant-role').selectOption(customRole);
    await page.getByTestId('grant-justification').fill('Quarterly compliance check');
    await page.getByTestId('grant-save').click();
    await expectText(page.getByTestId('grants-notice'), /^Granted /);

    const grantRow = page.locator(`[data-testid="grant-row"][data-username="${grantee.username}"]`);
    await expectText(grantRow.getByTestId('grant-row-role'), customRole);
    const expires = await grantRow.getByTestId('grant-row-expires').getAttribute('datetime');
    assert.ok(expires, 'the grant row shows an expiry');
    assert.ok(Date.parse(expires) > Date.now(), `expiry ${expires} in the future`);

    assert.equal((await grantee.client.get('/prompts')).status, 200, 'after the grant');
  });

  it('creates a restricted prompt', async function () {
    const title = `Incident triage ${Date.now()}`;
    await page.getByTestId('nav-prompts').click();
    await page.getByTestId('new-prompt').click();
    await page.getByTestId('prompt-title').fill(title);
    await page.getByTestId('prompt-body').fill('Summarise the incident without personal data.');
    await page.getByTestId('prompt-classification').selectOption('restricted');
    await page.getByTestId('prompt-save').click();

    await expectText(page.getByTestId('prompt-heading'), title);
    await expectText(page.getByTestId('prompt-classification-label'), 'restricted');

    await page.getByTestId('back-to-prompts').click();
    const row = page.getByTestId('prompt-row').filter({ hasText: title });
    await expectText(row.getByTestId('prompt-classification'), 'restricted');
  });

  it('opens, ends and reviews break-glass', async function () {
    await signOut();
    await signIn(analyst.username, analyst.password);

    await page.getByTestId('nav-emergency-access').click();
    await page.getByTestId('break-glass-justification').fill('too short');
    await page.getByTestId('break-glass-open').click();
    await page.getByTestId('field-error-justification').waitFor();

    await page
      .getByTestId('break-glass-justification')
      .fill('Primary admin unreachable during a live incident on the prompt bank.');
    await page.getByTestId('break-glass-duration').fill('15');
    await page.getByTestId('break-glass-open').click();
    await page.getByTestId('break-glass-banner').waitFor();
    await expectText(page.getByTestId('break-glass-time-left'), /^1[45] min/);

    // The banner stays on other pages.
    await page.getByTestId('nav-prompts').click();
    await page.getByTestId('break-glass-banner').waitFor();
    await page.getByTestId('break-glass-end').click();
    await page.getByTestId('break-glass-banner').waitFor({ state: 'detached' });

    await page.getByTestId('nav-emergency-access').click();
    const ownRow = page.locator(
      `[data-testid="break-glass-row"][data-username="${analyst.username}"]`,
    );
    await expectText(ownRow.getByTestId('break-glass-review-status'), 'Awaiting review');

    await signOut();
    await signIn('admin', adminTestPassword);
    await page.getByTestId('nav-emergency-access').click();
    const row = page.locator(
      `[data-testid="break-glass-row"][data-username="${analyst.username}"]`,
    );
    await row.getByTestId('break-glass-review').click();
    await page.getByTestId('break-glass-review-comment').fill('Confirmed with the incident log.');
    await page.getByTestId('break-glass-review-save').click();
    await expectText(row.getByTestId('break-glass-review-status'), /^justified/);
  });

  it('runs an access review and downloads it', async function () {
    await page.getByTestId('nav-access-reviews').click();
    await page.getByTestId('review-name').fill('Quarterly review');
    // Undecided items keep their access, so closing does not disable the test's accounts.
    await page.getByTestId('review-unreviewed').selectOption('keep');
    await page.getByTestId('review-create').click();
    await page.getByTestId('review-detail').waitFor();

    const kept = page.locator(
      `[data-testid="review-item"][data-username="${analyst.username}"][data-kind="base-role"]`,
    );
    await kept.getByTestId('review-item-keep').click();
    await expectText(kept.getByTestId('review-item-decision'), 'keep');

    const revoked = page.locator(
      `[data-testid="review-item"][data-username="${grantee.username}"][data-kind="grant"]`,
    );
    await revoked.getByTestId('review-item-revoke').click();
    await expectText(revoked.getByTestId('review-item-decision'), 'revoke');
    await expectText(page.getByTestId('review-progress'), /^2 of \d+ decided: 1 kept,\s+1 revoked/);

    assert.equal((await grantee.client.get('/prompts')).status, 403, 'after the revoke');

    await page.getByTestId('review-close').click();
    await expectText(page.getByTestId('review-close-warning'), /item\(s\) will expire and keep/);
    await page.getByTestId('review-close-confirm').click();
    await page.getByTestId('review-closed').waitFor();

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('review-download').click(),
    ]);
    assert.match(download.suggestedFilename(), /^access-review-[0-9a-f-]+\.json$/);
    const report = JSON.parse(fs.readFileSync(await download.path(), 'utf8')) as {
      document: string;
      signature: string;
      publicKeyPem: string;
    };
    assert.match(report.document, /Quarterly review/);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'console-review-report-'));
    try {
      fs.writeFileSync(path.join(dir, 'report.json'), report.document);
      fs.writeFileSync(path.join(dir, 'report.sig'), Buffer.from(report.signature, 'base64'));
      fs.writeFileSync(path.join(dir, 'public.pem'), report.publicKeyPem);
      const verified = execFileSync(
        'openssl',
        ['dgst', '-sha256', '-verify', 'public.pem', '-signature', 'report.sig', 'report.json'],
        { cwd: dir, encoding: 'utf8' },
      );
      assert.match(verified, /Verified OK/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hides forgot password without SMTP', async function () {
    await signOut();
    await page.getByTestId('forgot-password').click();
    await page.getByTestId('recovery-identifier').fill(analyst.username);
    await page.getByTestId('recovery-submit').click();
    await expectText(page.getByTestId('recovery-error'), /Account recovery by email is off/);
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.getByTestId('login-submit').waitFor();
    assert.equal(await page.getByTestId('forgot-password').count(), 0);
  });

  it('left no page errors', function () {
    assert.deepEqual(watch.pageProblems, []);
    assert.deepEqual(watch.foreignRequests, []);
  });

  async function signIn(username: string, password: string) {
    await page.getByTestId('login-username').fill(username);
    await page.getByTestId('login-password').fill(password);
    await page.getByTestId('login-submit').click();
    await expectText(page.getByTestId('current-user'), username);
  }

  async function signOut() {
    await page.getByTestId('logout').click();
    await page.getByTestId('login-submit').waitFor();
  }
});

describe('Console second approval of access changes @integration @e2e', function () {
  this.timeout(240_000);

  let testAppliance: TestAppliance;
  let browser: ConsoleBrowser;
  let page: Page;
  let watch: PageWatch;

  let secondAdmin: ApiClient;
  let author: { username: string };

  before(async function () {
    if (!fs.existsSync(path.join(consoleDir, 'dist', 'index.html'))) buildConsole();

    testAppliance = await startTestAppliance({ env: { ACCESS_CHANGE_APPROVAL: 'on' } });
    const origin = new URL(testAppliance.appliance.url).origin;
    await testAppliance.admin();
    secondAdmin = (await testAppliance.userWithRole('admin')).client;
    author = await testAppliance.userWithRole('author');

    browser = await openConsole('approval', origin);
    ({ page, watch } = browser);
    await page.getByTestId('login-username').fill('admin');
    await page.getByTestId('login-password').fill(adminTestPassword);
    await page.getByTestId('login-submit').click();
    await expectText(page.getByTestId('current-user'), 'admin');
  });

  after(async function () {
    await browser?.close();
    await testAppliance?.close();
  });

  it('files a role change for approval', async function () {
    await page.getByTestId('nav-users').click();
    const row = page.locator(`[data-testid="user-row"][data-username="${author.username}"]`);
    await row.getByTestId('user-row-role').selectOption('analyst');
    await row.getByTestId('user-row-save-role').click();
    await expectText(page.getByTestId('users-change-pending'), /^Waiting for a second approver\./);

    const users = await secondAdmin.get<{ items: Array<{ username: string; role: string }> }>(
      '/users',
    );
    const before = users.body.items.find((user) => user.username === author.username);
    assert.equal(before?.role, 'author', 'role unchanged until approved');

    await page.getByTestId('nav-access').click();
    const request = page
      .getByTestId('change-request-row')
      .filter({ hasText: `base role of ${author.username}` });
    await request.waitFor();
    assert.equal(await request.getByTestId('change-request-approve').isDisabled(), true);
  });

  it('approves another admin’s change', async function () {
    const roleName = 'second-approval-check';
    const filed = await secondAdmin.post('/access/roles', {
      name: roleName,
      permissions: ['prompts:read'],
    });
    assert.equal(filed.status, 202);

    await page.getByTestId('access-refresh').click();
    const request = page.getByTestId('change-request-row').filter({ hasText: roleName });
    await request.getByTestId('change-request-approve').click();
    await expectText(page.getByTestId('change-requests-notice'), /Approved and applied\.$/);
    await page.locator(`[data-testid="role-row"][data-role="${roleName}"]`).waitFor();
  });

  it('left no page errors', function () {
    assert.deepEqual(watch.pageProblems, []);
    assert.deepEqual(watch.foreignRequests, []);
  });
});

describe('Console security keys and devices @integration @e2e', function () {
  this.timeout(240_000);

  let testAppliance: TestAppliance;
  let browser: ConsoleBrowser;
  let page: Page;
  let watch: PageWatch;
  let analyst: { username: string; password: string };

  before(async function () {
    if (!fs.existsSync(path.join(consoleDir, 'dist', 'index.html'))) buildConsole();

    testAppliance = await startTestAppliance();
    analyst = await testAppliance.userWithRole('analyst');
    // Browsers reject an IP address as the relying-party id, so the page uses the name
    // localhost, which is the appliance's default WEBAUTHN_RP_ID for a loopback address.
    const origin = `https://localhost:${new URL(testAppliance.appliance.url).port}`;

    browser = await openConsole('keys', origin);
    ({ page, watch } = browser);

    // Chromium's virtual authenticator replaces a USB key: it is the browser's own
    // WebAuthn stack with a software key, and it confirms presence without a touch.
    const cdp = await browser.context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'usb',
        hasResidentKey: false,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });

    await page.goto(`${origin}/`);
    await signInWithPassword();
    await expectText(page.getByTestId('current-user'), analyst.username);
  });

  after(async function () {
    await browser?.close();
    await testAppliance?.close();
  });

  it('registers and renames a key', async function () {
    await page.getByTestId('nav-account').click();
    await page.getByTestId('security-key-name').fill('Desk key');
    await page.getByTestId('security-key-register').click();
    await expectText(
      page.getByTestId('security-keys-notice'),
      'Security key "Desk key" registered.',
    );
    await page.getByTestId('security-key-row').first().waitFor();

    await page.getByTestId('security-key-row-name').fill('Travel key');
    await page.getByTestId('security-key-rename').click();
    await expectText(
      page.getByTestId('security-keys-notice'),
      'Security key renamed to "Travel key".',
    );
    assert.equal(await page.getByTestId('security-key-row-name').inputValue(), 'Travel key');
  });

  it('signs in with the key', async function () {
    await page.getByTestId('logout').click();
    await signInWithPassword();
    await page.getByTestId('mfa-security-key').click();
    await expectText(page.getByTestId('current-user'), analyst.username);
  });

  it('trusts and revokes this device', async function () {
    await page.getByTestId('nav-account').click();
    const current = page.locator('[data-testid="device-row"][data-current="true"]');
    await current.getByTestId('device-trust').click();
    await expectText(page.getByTestId('devices-notice'), 'Device marked trusted.');
    await expectText(current.locator('.badge.state-good'), 'Trusted');

    await current.getByTestId('device-revoke').click();
    await expectText(page.getByTestId('devices-notice'), 'Device removed.');
  });

  it('deletes the key', async function () {
    await page.getByTestId('security-key-delete').click();
    await expectText(
      page.getByTestId('security-keys-notice'),
      'Security key "Travel key" deleted.',
    );
    await expectCount(page.getByTestId('security-key-row'), 0);
  });

  it('left no page errors', function () {
    assert.deepEqual(watch.pageProblems, []);
    assert.deepEqual(watch.foreignRequests, []);
  });

  async function signInWithPassword() {
    await page.getByTestId('login-username').fill(analyst.username);
    await page.getByTestId('login-password').fill(analyst.password);
    await page.getByTestId('login-submit').click();
  }
});
