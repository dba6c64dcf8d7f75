import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import type { Page } from 'playwright-core';

import type { ApiClient } from '../../appliance/testing/api-client';
import { startTestAppliance, type TestAppliance } from '../../appliance/testing/harness';
import {
  buildConsole,
  consoleDir,
  expectCount,
  expectText,
  signIn,
  signOut,
  type PageWatch,
  openConsole,
  type ConsoleBrowser,
} from './browser';

const projectKeysPath = '/api/v1/projects/keys';

describe('Console pages from effective access @integration @e2e', function () {
  this.timeout(240_000);

  let testAppliance: TestAppliance;
  let page: Page;
  let browser: ConsoleBrowser;
  let watch: PageWatch;

  let admin: ApiClient;
  let author: { client: ApiClient; username: string; password: string };
  let analyst: { username: string; password: string };
  const keyReaderRole = `key-reader-${Date.now().toString(36)}`;

  before(async function () {
    if (!fs.existsSync(path.join(consoleDir, 'dist', 'index.html'))) buildConsole();

    // Authors may open break-glass here too, to check the banner of a role without evidence:read.
    testAppliance = await startTestAppliance({
      env: { BREAK_GLASS_ROLES: 'admin,analyst,author' },
    });
    const origin = new URL(testAppliance.appliance.url).origin;
    admin = await testAppliance.admin();
    author = await testAppliance.userWithRole('author');
    analyst = await testAppliance.userWithRole('analyst');

    // The Keys page requests project keys, which this appliance may not serve, and shows that.
    browser = await openConsole(
      'effective-access',
      origin,
      (message) =>
        /status of 404\b/.test(message.text()) && message.location().url.endsWith(projectKeysPath),
    );
    ({ page, watch } = browser);
    await signIn(page, author.username, author.password);
  });

  afterEach(async function () {
    if (this.currentTest) await browser.screenshot(this.currentTest.title);
  });

  after(async function () {
    await browser?.close();
    await testAppliance?.close();
  });

  it('shows Keys only while granted', async function () {
    await page.getByTestId('nav-prompts').waitFor();
    await expectCount(page.getByTestId('nav-keys'), 0);
    await page.goto(`${page.url().split('#')[0]}#/keys`);
    await page.getByTestId('no-access').waitFor();

    const role = await admin.post('/access/roles', {
      name: keyReaderRole,
      description: 'Reads the key inventory for a key ceremony.',
      permissions: ['keys:read'],
    });
    assert.equal(role.status, 201, JSON.stringify(role.body));
    const me = await author.client.get<{ userId: string }>('/access/me');
    const grant = await admin.post<{ id: string }>('/access/grants', {
      userId: me.body.userId,
      role: keyReaderRole,
      expiresAt: new Date(Date.now() + 60 * 60_000).toISOString(),
      justification: 'Key ceremony this afternoon',
    });
    assert.equal(grant.status, 201, JSON.stringify(grant.body));

    await page.reload();
    await page.getByTestId('nav-keys').click();
    await page.getByRole('heading', { name: 'Keys', level: 1 }).waitFor();
    await expectCount(page.getByTestId('no-access'), 0);
    // Rotation needs keys:execute, which the custom role does not give.
    await page.getByTestId('keys-refresh').waitFor();
    await expectCount(page.getByTestId('rotate-master-key'), 0);
    await expectCount(page.getByTestId('nav-users'), 0);

    // The API key form offers what the grant gives, next to the base role's permissions.
    await page.getByTestId('nav-api-keys').click();
    await page.getByTestId('new-api-key').click();
    await page.locator('[data-permission="keys:read"]').waitFor();
    await page.locator('[data-permission="prompts:create"]').waitFor();
    await page.getByTestId('api-key-cancel').click();

    const revoked = await admin.delete(`/access/grants/${grant.body.id}`);
    assert.equal(revoked.status, 204, JSON.stringify(revoked.body));

    await page.reload();
    await page.getByTestId('nav-prompts').waitFor();
    await expectCount(page.getByTestId('nav-keys'), 0);
    await page.goto(`${page.url().split('#')[0]}#/keys`);
    await page.getByTestId('no-access').waitFor();
  });

  it('names an unknown project id', async function () {
    await page.getByTestId('nav-api-keys').click();
    await page.getByTestId('new-api-key').click();
    await page.getByTestId('api-key-name').fill('Prompt export job');
    await page.locator('[data-permission="prompts:read"]').check();

    // The author may not list projects (projects:read), so the form takes pasted ids.
    await expectCount(page.getByTestId('api-key-project'), 0);
    const unknownProject = crypto.randomUUID();
    await page.getByTestId('api-key-project-ids').fill(`${unknownProject}\n`);
    await page.getByTestId('api-key-create').click();
    await expectText(
      page.getByTestId('field-error-projectIds'),
      `Project 1 (${unknownProject}): no project has the id ${unknownProject}; list projects with GET /api/v1/projects`,
    );

    await page.getByTestId('api-key-project-ids').fill(`${unknownProject}, not-an-id`);
    await page.getByTestId('api-key-create').click();
    await expectText(page.getByTestId('field-error-projectIds'), /^Project 2 \(not-an-id\): /);

    // Without a project limit the same key is created.
    await page.getByTestId('api-key-project-ids').fill('');
    await page.getByTestId('api-key-create').click();
    await page.getByTestId('api-key-secret').waitFor();
    await expectCount(page.getByTestId('api-key-row-projects'), 0);
  });

  it('shows the banner without evidence:read', async function () {
    await page.getByTestId('nav-emergency-access').click();
    await expectCount(page.getByTestId('break-glass-table'), 0);
    await page
      .getByTestId('break-glass-justification')
      .fill('Restore a prompt that a broken import job overwrote tonight.');
    await page.getByTestId('break-glass-duration').fill('10');
    await page.getByTestId('break-glass-open').click();
    await page.getByTestId('break-glass-banner').waitFor();
    await page.getByTestId('break-glass-open-notice').waitFor();

    await page.reload();
    await expectText(page.getByTestId('break-glass-time-left'), /^(9|10) min/);
    await page.getByTestId('break-glass-end').click();
    await page.getByTestId('break-glass-banner').waitFor({ state: 'detached' });
    await page.getByTestId('break-glass-form').waitFor();
    await expectCount(page.getByTestId('nav-users'), 0);
  });

  it('shows Users during break-glass', async function () {
    await signOut(page);
    await signIn(page, analyst.username, analyst.password);
    await page.getByTestId('nav-alerts').waitFor();
    await expectCount(page.getByTestId('nav-users'), 0);

    await page.getByTestId('nav-emergency-access').click();
    await page
      .getByTestId('break-glass-justification')
      .fill('Primary admin unreachable during a live incident on the prompt bank.');
    await page.getByTestId('break-glass-duration').fill('15');
    await page.getByTestId('break-glass-open').click();
    await page.getByTestId('break-glass-banner').waitFor();
    await page.getByTestId('nav-users').click();
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();

    // After a page load the banner and the entry come back from GET /access/me alone.
    await page.reload();
    await expectText(page.getByTestId('break-glass-time-left'), /^1[45] min/);
    await page.getByTestId('nav-users').waitFor();

    await page.getByTestId('break-glass-end').click();
    await page.getByTestId('break-glass-banner').waitFor({ state: 'detached' });
    await expectCount(page.getByTestId('nav-users'), 0);
    await page.getByTestId('no-access').waitFor();
  });

  it('left no page errors', function () {
    assert.deepEqual(watch.pageProblems, []);
    assert.deepEqual(watch.foreignRequests, []);
  });
});
