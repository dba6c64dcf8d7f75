import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { QueryTypes } from 'sequelize';

import { startTestAppliance, type TestAppliance } from '../../testing/harness';
import { sessionCookieName } from '../sessions';
import { attemptCookieName } from './login-attempts';
import { startTestProvider, type TestProvider } from './testing/test-provider';
import { TestBrowser, type Page } from './testing/test-browser';

interface AuditRow {
  action: string;
  outcome: string;
  actor_username: string | null;
  reason: string | null;
}

describe('OpenID Connect sign-in against a real provider @integration', function () {
  this.timeout(120_000);
  let provider: TestProvider;
  let test: TestAppliance;
  let ca: Buffer;

  before(async function () {
    provider = await startTestProvider();
    test = await startTestAppliance({
      env: {
        OIDC_ISSUER: provider.issuer,
        OIDC_CLIENT_ID: provider.clientId,
        OIDC_CLIENT_SECRET: provider.clientSecret,
        OIDC_GROUP_ROLE_MAP: JSON.stringify({
          'soc-analysts': 'analyst',
          'prompt-authors': 'author',
        }),
      },
    });
    provider.registerClient(new URL('/api/v1/auth/oidc/callback', test.appliance.url).href);
    ca = fs.readFileSync(path.join(test.appliance.config.tlsDir, 'appliance.crt'));

    provider.accounts.set('sub-1001', {
      subject: 'sub-1001',
      // Full-width letters: NFKC turns them into plain "alice.analyst".
      preferredUsername: 'Ａlice.Analyst',
      groups: ['soc-analysts', 'unrelated-group'],
    });
    provider.accounts.set('sub-2002', {
      subject: 'sub-2002',
      email: 'bob@example.test',
      groups: ['marketing'],
    });
    provider.accounts.set('sub-4004', {
      subject: 'sub-4004',
      preferredUsername: 'carol',
      groups: ['soc-analysts'],
    });
    provider.accounts.set('sub-3003', {
      subject: 'sub-3003',
      // Same name as the local first admin: must not be linked to it.
      preferredUsername: 'admin',
      groups: ['soc-analysts'],
    });
  });

  after(async function () {
    await test?.close();
    await provider?.close();
  });

  const isCallback = (url: URL) => url.pathname === '/api/v1/auth/oidc/callback';
  const loginUrl = () => new URL('/api/v1/auth/oidc/login', test.appliance.url);

  /** Starts a sign-in and signs in at the provider; returns the page that redirects to the callback. */
  async function signInAtProvider(browser: TestBrowser, subject: string): Promise<URL> {
    let page = await browser.open(loginUrl(), isCallback);
    // A browser already signed in at the provider goes straight back; otherwise login, then consent.
    for (let step = 0; step < 3 && !redirectsToCallback(page); step++) {
      assert.equal(page.status, 200, `provider page ${page.url.href}: ${page.body.slice(0, 200)}`);
      page = await browser.submitForm(
        page,
        page.body.includes('name="login"') ? { login: subject, password: 'any' } : {},
        isCallback,
      );
    }
    assert.ok(
      redirectsToCallback(page),
      `expected a redirect to the callback from ${page.url.href}`,
    );
    return new URL(String(page.headers.location), page.url);
  }

  function redirectsToCallback(page: Page): boolean {
    return Boolean(page.headers.location && isCallback(new URL(page.headers.location, page.url)));
  }

  /** Calls an API route with the browser's session cookie. */
  function apiAs(browser: TestBrowser, route: string) {
    const token = browser.cookie('127.0.0.1', sessionCookieName);
    assert.ok(token, 'the browser holds no session cookie');
    return test.anonymous().request('GET', route, undefined, {
      cookie: `${sessionCookieName}=${token}`,
    });
  }

  async function lastAudit(action: string): Promise<AuditRow> {
    const rows = await test.appliance.database.sequelize.query<AuditRow>(
      'SELECT * FROM audit_records WHERE action = :action ORDER BY seq DESC LIMIT 1',
      { type: QueryTypes.SELECT, replacements: { action } },
    );
    return rows[0];
  }

  it('sends the browser to the provider with PKCE, state and nonce kept server-side', async function () {
    const browser = new TestBrowser(ca);
    const page = await browser.open(loginUrl(), () => true);

    assert.equal(page.status, 302);
    const location = new URL(String(page.headers.location));
    assert.equal(location.origin, provider.issuer);
    assert.equal(location.searchParams.get('code_challenge_method'), 'S256');
    for (const parameter of ['code_challenge', 'state', 'nonce'])
      assert.ok(location.searchParams.get(parameter), `${parameter} missing`);
    assert.ok(browser.cookie('127.0.0.1', attemptCookieName));
    assert.match(String(page.headers['set-cookie']), /SameSite=Lax/i);
    assert.equal((await lastAudit('auth.oidc.start')).outcome, 'success');
  });

  it('signs in an analyst, provisions the user and opens a working session', async function () {
    const browser = new TestBrowser(ca);
    browser.setCookie('127.0.0.1', sessionCookieName, 'stale-token-from-before');
    const callback = await signInAtProvider(browser, 'sub-1001');

    const landing = await browser.open(callback, (next) => next.pathname === '/');
    assert.equal(landing.status, 303, landing.body);
    assert.equal(landing.headers.location, '/');
    const token = browser.cookie('127.0.0.1', sessionCookieName);
    assert.ok(token && token !== 'stale-token-from-before', 'a new session id was issued');
    assert.match(String(landing.headers['set-cookie']), /__Host-appliance_session=.*Secure/);

    const me = await apiAs(browser, '/auth/me');
    assert.equal(me.status, 200, JSON.stringify(me.body));
    assert.equal(me.body.user.username, 'alice.analyst');
    assert.equal(me.body.user.role, 'analyst');
    assert.equal(me.body.user.mustChangePassword, false);

    const alerts = await apiAs(browser, '/alerts');
    assert.notEqual(alerts.status, 401);
    assert.notEqual(alerts.status, 403);
    const users = await apiAs(browser, '/users');
    assert.equal(users.status, 403, 'an analyst may not list users');

    const audit = await lastAudit('auth.oidc.login');
    assert.equal(audit.outcome, 'success');
    assert.match(String(audit.reason), new RegExp(`issuer=${provider.issuer}; subject=sub-1001`));
    assert.equal(audit.actor_username, 'alice.analyst');
  });

  it('updates role after group change', async function () {
    const first = new TestBrowser(ca);
    await first.open(await signInAtProvider(first, 'sub-1001'), (next) => next.pathname === '/');
    const before = await apiAs(first, '/auth/me');
    assert.equal(before.body.user.role, 'analyst');

    provider.accounts.get('sub-1001')!.groups = ['prompt-authors'];
    try {
      const second = new TestBrowser(ca);
      await second.open(await signInAtProvider(second, 'sub-1001'), (n) => n.pathname === '/');
      const after = await apiAs(second, '/auth/me');
      assert.equal(after.body.user.role, 'author');
      assert.equal(after.body.user.id, before.body.user.id);

      // The role change ended the sessions opened under the old role.
      assert.equal((await apiAs(first, '/auth/me')).status, 401);
    } finally {
      provider.accounts.get('sub-1001')!.groups = ['soc-analysts'];
    }
  });

  it('rejects unmapped groups with 403', async function () {
    const browser = new TestBrowser(ca);
    const page = await browser.open(await signInAtProvider(browser, 'sub-2002'));

    assert.equal(page.status, 403, page.body);
    assert.match(String(page.headers['content-type']), /application\/problem\+json/);
    assert.match(JSON.parse(page.body).detail, /OIDC_GROUP_ROLE_MAP/);
    assert.equal(browser.cookie('127.0.0.1', sessionCookieName), undefined);

    const audit = await lastAudit('auth.oidc.login');
    assert.equal(audit.outcome, 'denied');
    assert.match(String(audit.reason), /forbidden/);
    assert.match(String(audit.reason), /subject=sub-2002/);
    assert.doesNotMatch(JSON.stringify(audit), /eyJ/, 'no token in the audit record');

    const users = await test.appliance.database.sequelize.query(
      "SELECT id FROM users WHERE username = 'bob@example.test'",
      { type: QueryTypes.SELECT },
    );
    assert.deepEqual(users, [], 'a refused user is not provisioned');
  });

  it('links users by issuer and subject, never by a matching local name', async function () {
    const browser = new TestBrowser(ca);
    const page = await browser.open(await signInAtProvider(browser, 'sub-3003'));

    assert.equal(page.status, 409, page.body);
    assert.equal(browser.cookie('127.0.0.1', sessionCookieName), undefined);
  });

  it('refuses a replayed callback with 400', async function () {
    const browser = new TestBrowser(ca);
    const callback = await signInAtProvider(browser, 'sub-1001');
    const binding = browser.cookie('127.0.0.1', attemptCookieName)!;
    assert.equal((await browser.open(callback, () => true)).status, 303);

    browser.setCookie('127.0.0.1', attemptCookieName, binding);
    const replay = await browser.open(callback, () => true);
    assert.equal(replay.status, 400, replay.body);
    assert.match(JSON.parse(replay.body).detail, /already used/);
  });

  it('refuses a forged state with 400 and uses up the attempt', async function () {
    const browser = new TestBrowser(ca);
    const callback = await signInAtProvider(browser, 'sub-1001');
    const binding = browser.cookie('127.0.0.1', attemptCookieName)!;

    const forged = new URL(callback);
    forged.searchParams.set('state', 'forged-state-value');
    const page = await browser.open(forged, () => true);
    assert.equal(page.status, 400, page.body);
    assert.equal(
      JSON.parse(page.body).type,
      'urn:prompt-bank-appliance:problem:invalid_oidc_state',
    );

    // The genuine callback no longer works: the forged one used the attempt up.
    browser.setCookie('127.0.0.1', attemptCookieName, binding);
    assert.equal((await browser.open(callback, () => true)).status, 400);
  });

  it('refuses a callback without the binding cookie of the browser that started it', async function () {
    const browser = new TestBrowser(ca);
    const callback = await signInAtProvider(browser, 'sub-1001');

    const other = new TestBrowser(ca);
    const page = await other.open(callback, () => true);
    assert.equal(page.status, 400, page.body);
  });

  it('denies a tampered authorisation code with 401', async function () {
    const browser = new TestBrowser(ca);
    const callback = await signInAtProvider(browser, 'sub-1001');

    const tampered = new URL(callback);
    tampered.searchParams.set('code', `${callback.searchParams.get('code')}x`);
    const page = await browser.open(tampered, () => true);
    assert.equal(page.status, 401, page.body);
    assert.equal(browser.cookie('127.0.0.1', sessionCookieName), undefined);
    assert.equal((await lastAudit('auth.oidc.login')).outcome, 'denied');
  });

  it('fails closed without audit record', async function () {
    const browser = new TestBrowser(ca);
    const callback = await signInAtProvider(browser, 'sub-4004');
    const sequelize = test.appliance.database.sequelize;
    await sequelize.query(
      "CREATE TRIGGER audit_unavailable BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    );
    try {
      const page = await browser.open(callback, () => true);
      assert.equal(page.status, 503, page.body);
      assert.equal(browser.cookie('127.0.0.1', sessionCookieName), undefined);
    } finally {
      await sequelize.query('DROP TRIGGER audit_unavailable');
    }

    const users = await sequelize.query("SELECT id FROM users WHERE username = 'carol'", {
      type: QueryTypes.SELECT,
    });
    assert.deepEqual(users, []);
    const links = await sequelize.query("SELECT * FROM oidc_links WHERE subject = 'sub-4004'", {
      type: QueryTypes.SELECT,
    });
    assert.deepEqual(links, []);
  });
});

describe('OpenID Connect sign-in when not configured @integration', function () {
  this.timeout(60_000);
  let test: TestAppliance;

  before(async function () {
    test = await startTestAppliance();
  });

  after(async function () {
    await test?.close();
  });

  it('answers the OIDC routes with a 404 problem naming the settings', async function () {
    const response = await test.anonymous().get('/auth/oidc/login');
    assert.equal(response.status, 404);
    assert.match(response.body.detail, /OIDC_ISSUER/);
  });
});
