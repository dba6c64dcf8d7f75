import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import type { Page } from 'playwright-core';

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

const projectKeysPath = '/api/v1/projects/keys';

/** Length of a TOTP time step, in milliseconds (RFC 6238 default, which the appliance uses). */
const totpStepMs = 30_000;

/** Returns the current TOTP code of a base32 secret, computed by oathtool. */
function totpCode(secret: string): string {
  return execFileSync('oathtool', ['--totp', '--base32', secret], { encoding: 'utf8' }).trim();
}

/**
 * Waits until a new TOTP time step starts after `usedAt`, because the appliance rejects a
 * second code from the step it already accepted (replay protection).
 */
async function waitForNextStep(usedAt: number): Promise<void> {
  const nextStep = (Math.floor(usedAt / totpStepMs) + 1) * totpStepMs;
  const wait = nextStep - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait + 200));
}

describe('Console account, API key, user and key pages @integration @e2e', function () {
  this.timeout(240_000);

  let testAppliance: TestAppliance;
  let page: Page;
  let browser: ConsoleBrowser;
  let origin: string;
  let watch: PageWatch;

  let auditor: { username: string; password: string };
  let totpSecret = '';
  /** Time at which the appliance accepted the last TOTP code. */
  let lastCodeAt = 0;

  before(async function () {
    if (!fs.existsSync(path.join(consoleDir, 'dist', 'index.html'))) buildConsole();

    testAppliance = await startTestAppliance();
    origin = new URL(testAppliance.appliance.url).origin;
    // Replaces the one-time admin password with adminTestPassword. The auditor is created
    // now, because a later test signs out the harness's admin session with the others.
    await testAppliance.admin();
    auditor = await testAppliance.userWithRole('auditor');

    // The Keys page requests project keys, which this appliance may not serve, and shows that.
    browser = await openConsole(
      'account',
      origin,
      (message) =>
        /status of 404\b/.test(message.text()) && message.location().url.endsWith(projectKeysPath),
    );
    ({ page, watch } = browser);
    await signInWithPassword('admin', adminTestPassword);
    await expectText(page.getByTestId('current-user'), 'admin');
  });

  afterEach(async function () {
    if (this.currentTest) await browser.screenshot(this.currentTest.title);
  });

  after(async function () {
    await browser?.close();
    await testAppliance?.close();
  });

  it('shows admin navigation entries', async function () {
    // The entries appear once GET /access/me has returned, so each is awaited.
    for (const entry of ['nav-users', 'nav-keys', 'nav-account', 'nav-api-keys']) {
      await page.getByTestId(entry).waitFor({ state: 'visible' });
    }
  });

  it('lists sessions and revokes another', async function () {
    const otherClient = testAppliance.anonymous();
    const login = await otherClient.post('/auth/login', {
      username: 'admin',
      password: adminTestPassword,
    });
    assert.equal(login.status, 200);

    await page.getByTestId('nav-account').click();
    await page.getByRole('heading', { name: 'Account security', level: 1 }).waitFor();
    await page.getByTestId('sessions-refresh').click();
    const current = page.locator('[data-testid="session-row"][data-current="true"]');
    await expectCount(current, 1);
    await current.getByTestId('session-current').waitFor();
    assert.ok((await page.getByTestId('session-revoke').count()) >= 1);

    await page.getByTestId('sessions-revoke-others').click();
    await expectText(page.getByTestId('sessions-notice'), /ended/);
    await expectCount(page.getByTestId('session-row'), 1);
    assert.equal((await otherClient.get('/auth/me')).status, 401);
  });

  it('enrols TOTP with an oathtool code', async function () {
    await page.getByTestId('totp-start').click();
    const qr = page.getByTestId('totp-qr');
    await qr.waitFor();
    const qrWidth = await qr.evaluate((image) => (image as HTMLImageElement).naturalWidth);
    assert.ok(qrWidth > 0, 'the QR code image loaded');

    totpSecret = (await page.getByTestId('totp-secret').getAttribute('data-secret')) ?? '';
    assert.match(totpSecret, /^[A-Z2-7]+=*$/);
    const shownKey = (await page.getByTestId('totp-secret').textContent()) ?? '';
    assert.equal(shownKey.replace(/\s/g, ''), totpSecret);

    await page.getByTestId('totp-code').fill('12345');
    await page.getByTestId('totp-confirm').click();
    await page.getByTestId('field-error-code').waitFor();
    assert.equal(await page.getByTestId('totp-code').getAttribute('aria-invalid'), 'true');

    await page.getByTestId('totp-code').fill(totpCode(totpSecret));
    await page.getByTestId('totp-confirm').click();
    lastCodeAt = Date.now();

    const codes = page.getByTestId('recovery-codes-value');
    await codes.waitFor();
    const recoveryCodes = ((await codes.textContent()) ?? '').trim().split('\n');
    assert.ok(recoveryCodes.length >= 8, `${recoveryCodes.length} recovery codes shown`);
    await expectText(page.getByTestId('recovery-codes'), /Shown only once/);

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('recovery-codes-download').click(),
    ]);
    assert.equal(download.suggestedFilename(), 'admin-recovery-codes.txt');
    const downloaded = fs.readFileSync(await download.path(), 'utf8');
    assert.deepEqual(downloaded.trim().split('\n'), recoveryCodes);

    await page.getByTestId('recovery-codes-done').click();
    assert.equal(await codes.count(), 0);
    await expectText(page.getByTestId('totp-status'), /Active/);
  });

  it('signs in again with the MFA step', async function () {
    await page.getByTestId('logout').click();
    await expectText(page.getByTestId('login-notice'), /signed out/);
    await signInWithPassword('admin', adminTestPassword);

    await page.getByRole('heading', { name: 'Second factor' }).waitFor();
    const wrongCode = totpCode(totpSecret) === '000000' ? '111111' : '000000';
    await page.getByTestId('mfa-code').fill(wrongCode);
    await page.getByTestId('mfa-submit').click();
    await expectText(page.getByTestId('mfa-error'), /Invalid second factor/);

    await waitForNextStep(lastCodeAt);
    await page.getByTestId('mfa-code').fill(totpCode(totpSecret));
    await page.getByTestId('mfa-submit').click();
    lastCodeAt = Date.now();
    await expectText(page.getByTestId('current-user'), 'admin');
  });

  it('creates, uses and revokes an API key', async function () {
    const keyName = `SIEM export ${Date.now()}`;
    await page.getByTestId('nav-api-keys').click();
    await page.getByRole('heading', { name: 'API keys', level: 1 }).waitFor();
    await page.getByTestId('new-api-key').click();

    // No permission chosen: the appliance names the permissions field.
    await page.getByTestId('api-key-name').fill(keyName);
    await page.getByTestId('api-key-create').click();
    await page.getByTestId('field-error-permissions').waitFor();

    await page.locator('[data-permission="keys:read"]').check();
    await page.getByTestId('api-key-expiry-30').click();
    await page.getByTestId('api-key-create').click();

    const secret = page.getByTestId('api-key-secret-value');
    await secret.waitFor();
    const key = ((await secret.textContent()) ?? '').trim();
    assert.match(key, /^pba_/);

    const client = testAppliance.anonymous();
    const bearer = { authorization: `Bearer ${key}` };
    const inventory = await client.request('GET', '/keys', undefined, bearer);
    assert.equal(inventory.status, 200);
    assert.ok(inventory.body.items.length >= 3);
    const beyondKey = await client.request('GET', '/users', undefined, bearer);
    assert.equal(beyondKey.status, 403);

    await page.getByTestId('api-key-secret-done').click();
    await page.reload();
    const row = page.getByTestId('api-key-row').filter({ hasText: keyName });
    await row.waitFor();
    await expectText(row.getByTestId('api-key-last-ip'), /127\.0\.0\.1/);
    assert.notEqual(((await row.getByTestId('api-key-last-used').textContent()) ?? '').trim(), '—');

    await row.getByTestId('api-key-revoke').click();
    await page.getByTestId('api-key-revoke-confirm').click();
    await expectText(page.getByTestId('api-keys-notice'), /revoked/);
    await expectCount(page.getByTestId('api-key-row').filter({ hasText: keyName }), 0);

    const afterRevoke = await client.request('GET', '/keys', undefined, bearer);
    assert.equal(afterRevoke.status, 401);
  });

  it('creates a user with a one-time password', async function () {
    await page.getByTestId('nav-users').click();
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
    await page.getByTestId('new-user').click();

    await page.getByTestId('user-username').fill('bad name!');
    await page.getByTestId('user-create').click();
    await page.getByTestId('field-error-username').waitFor();

    await page.getByTestId('user-username').fill('analyst-e2e');
    await page.getByTestId('user-role').selectOption('analyst');
    await page.getByTestId('user-create').click();
    const password = ((await page.getByTestId('user-password-value').textContent()) ?? '').trim();
    assert.equal(password.length, 20);

    const client = testAppliance.anonymous();
    const login = await client.post('/auth/login', { username: 'analyst-e2e', password });
    assert.equal(login.status, 200);
    assert.equal(login.body.user.mustChangePassword, true);

    await page.getByTestId('user-password-done').click();
    const row = page.locator('[data-testid="user-row"][data-username="analyst-e2e"]');
    await row.waitFor();
    await row.getByTestId('user-row-role').selectOption('auditor');
    await row.getByTestId('user-row-save-role').click();
    await expectText(page.getByTestId('users-notice'), /auditor/);
    assert.equal(await row.getByTestId('user-row-role').inputValue(), 'auditor');

    await row.getByTestId('user-row-disable').click();
    await expectText(row.getByTestId('user-row-state'), /Disabled/);
    const refused = await client.post('/auth/login', { username: 'analyst-e2e', password });
    assert.equal(refused.status, 401);

    await row.getByTestId('user-row-enable').click();
    await expectText(row.getByTestId('user-row-state'), /Enabled/);
  });

  it('shows the key inventory and rotates', async function () {
    await page.getByTestId('nav-keys').click();
    await page.getByRole('heading', { name: 'Keys', level: 1 }).waitFor();

    const rows = page.getByTestId('key-row');
    await rows.first().waitFor();
    for (const keyClass of ['master', 'audit-hmac', 'signing']) {
      const row = page.locator(`[data-testid="key-row"][data-key-class="${keyClass}"]`).first();
      await expectText(row.getByTestId('key-location'), /^pkcs11:/);
    }
    const activeMaster = page.locator(
      '[data-testid="key-row"][data-key-class="master"][data-state="active"]',
    );
    await expectCount(activeMaster, 1);
    const versionBefore = Number(await activeMaster.getByTestId('key-version').textContent());

    await page.getByTestId('rotate-master-key').click();
    await page.getByTestId('rotate-cancel').click();
    await page.getByTestId('rotate-master-key').click();
    await page.getByTestId('rotate-confirm').click();
    await expectText(page.getByTestId('keys-notice'), /is active/);

    await expectCount(page.getByTestId('rotation-row'), 1);
    await expectText(activeMaster.getByTestId('key-version'), String(versionBefore + 1));
  });

  it('shows an auditor keys without rotation', async function () {
    await page.getByTestId('logout').click();
    await signInWithPassword(auditor.username, auditor.password);
    await expectText(page.getByTestId('current-role'), 'auditor');

    assert.equal(await page.getByTestId('nav-users').count(), 0);
    await page.getByTestId('nav-keys').click();
    await page.getByTestId('key-row').first().waitFor();
    await expectCount(page.getByTestId('rotation-row'), 1);
    assert.equal(await page.getByTestId('rotate-master-key').count(), 0);

    await page.goto(`${origin}/#/users`);
    await page.getByTestId('no-access').waitFor();

    // The permission choices of a new API key are those of the auditor role only.
    await page.getByTestId('nav-api-keys').click();
    await page.getByTestId('new-api-key').click();
    const offered = await page
      .getByTestId('api-key-permission')
      .evaluateAll((inputs) => inputs.map((input) => input.getAttribute('data-permission')));
    assert.ok(offered.includes('keys:read'));
    assert.ok(!offered.includes('keys:execute'));
    assert.ok(!offered.includes('users:create'));
  });

  it('loads nothing from other hosts and breaks no CSP rule', function () {
    assert.deepEqual(watch.foreignRequests, []);
    assert.deepEqual(watch.pageProblems, []);
  });

  async function signInWithPassword(username: string, password: string) {
    await page.getByTestId('login-username').fill(username);
    await page.getByTestId('login-password').fill(password);
    await page.getByTestId('login-submit').click();
  }
});
