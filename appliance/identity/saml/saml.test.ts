import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { QueryTypes } from 'sequelize';

import { startTestAppliance, type TestAppliance } from '../../testing/harness';
import { TestBrowser, type Page } from '../oidc/testing/test-browser';
import { sessionCookieName } from '../sessions';
import { samlAttemptCookieName } from './login-attempts';
import {
  startTestIdentityProvider,
  type ResponsePlan,
  type TestIdentityProvider,
} from './testing/test-idp';

interface AuditRow {
  action: string;
  outcome: string;
  actor_username: string | null;
  reason: string | null;
}

const problemType = 'urn:prompt-bank-appliance:problem:';

const analyst: ResponsePlan = {
  nameId: 'dana.analyst',
  attributes: { groups: ['soc-analysts', 'unrelated-group'] },
};

describe('SAML sign-in against a test identity provider @integration', function () {
  this.timeout(120_000);
  let idp: TestIdentityProvider;
  let test: TestAppliance;
  let ca: Buffer;

  before(async function () {
    idp = await startTestIdentityProvider();
    test = await startTestAppliance({
      env: {
        SAML_IDP_SSO_URL: idp.ssoUrl,
        SAML_IDP_CERT_FILE: idp.trusted.certificateFile,
        SAML_IDP_ENTITY_ID: idp.entityId,
        SAML_GROUP_ROLE_MAP: JSON.stringify({
          'soc-analysts': 'analyst',
          'prompt-authors': 'author',
        }),
      },
    });
    ca = fs.readFileSync(path.join(test.appliance.config.tlsDir, 'appliance.crt'));
  });

  beforeEach(function () {
    idp.plan = { ...analyst };
  });

  after(async function () {
    await test?.close();
    await idp?.close();
  });

  const loginUrl = () => new URL('/api/v1/auth/saml/login', test.appliance.url);
  const isConsole = (url: URL) => url.pathname === '/';

  /** Starts a sign-in and returns the provider's auto-submit form page. */
  async function formFromProvider(browser: TestBrowser): Promise<Page> {
    const page = await browser.open(loginUrl());
    assert.equal(page.status, 200, `provider page ${page.url.href}: ${page.body.slice(0, 300)}`);
    assert.match(page.body, /name="SAMLResponse"/);
    return page;
  }

  /** Posts the provider's form to the ACS and returns the appliance's response, without following it. */
  async function postToAcs(browser: TestBrowser, form: Page): Promise<Page> {
    return browser.submitForm(form, {}, isConsole);
  }

  function problemOf(page: Page): { type: string; detail: string } {
    assert.match(String(page.headers['content-type']), /application\/problem\+json/);
    return JSON.parse(page.body) as { type: string; detail: string };
  }

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

  /** Runs one sign-in under `plan` and checks it is rejected with `status` and problem `code`. */
  async function expectRejected(plan: Partial<ResponsePlan>, status: number, code: string) {
    idp.plan = { ...analyst, ...plan };
    const browser = new TestBrowser(ca);
    const page = await postToAcs(browser, await formFromProvider(browser));

    assert.equal(page.status, status, page.body);
    assert.equal(problemOf(page).type, problemType + code);
    assert.equal(browser.cookie('127.0.0.1', sessionCookieName), undefined);

    const audit = await lastAudit('auth.saml.login');
    assert.equal(audit.outcome, status === 401 || status === 403 ? 'denied' : 'failure');
    assert.match(String(audit.reason), new RegExp(code));
    return page;
  }

  it('sends an AuthnRequest with a RelayState bound to a pending attempt', async function () {
    const browser = new TestBrowser(ca);
    const page = await browser.open(loginUrl(), () => true);

    assert.equal(page.status, 302);
    const location = new URL(String(page.headers.location));
    assert.equal(location.origin + location.pathname, idp.ssoUrl);
    assert.ok(location.searchParams.get('SAMLRequest'), 'SAMLRequest missing');
    const relayState = location.searchParams.get('RelayState');
    assert.ok(relayState, 'RelayState missing');
    assert.ok(relayState.length >= 40, 'RelayState shorter than 40 characters');
    assert.ok(browser.cookie('127.0.0.1', samlAttemptCookieName));
    assert.match(String(page.headers['set-cookie']), /__Host-appliance_saml=.*SameSite=None/i);
    assert.match(String(page.headers['set-cookie']), /Secure/);

    const stored = await test.appliance.database.sequelize.query<{ id: string }>(
      'SELECT id FROM saml_login_attempts',
      { type: QueryTypes.SELECT },
    );
    assert.ok(stored.length >= 1);
    assert.ok(
      stored.every((row) => row.id !== relayState),
      'only the hash of the RelayState is stored',
    );
    assert.equal((await lastAudit('auth.saml.start')).outcome, 'success');
  });

  it('signs in an analyst with a signed assertion', async function () {
    const browser = new TestBrowser(ca);
    browser.setCookie('127.0.0.1', sessionCookieName, 'stale-token-from-before');
    const form = await formFromProvider(browser);
    assert.equal(
      idp.lastRequest?.acsUrl,
      new URL('/api/v1/auth/saml/acs', test.appliance.url).href,
    );

    const landing = await postToAcs(browser, form);
    assert.equal(landing.status, 303, landing.body);
    assert.equal(landing.headers.location, '/');
    const token = browser.cookie('127.0.0.1', sessionCookieName);
    assert.ok(token, 'no session cookie');
    assert.notEqual(token, 'stale-token-from-before', 'a new session id was issued');

    const me = await apiAs(browser, '/auth/me');
    assert.equal(me.status, 200, JSON.stringify(me.body));
    assert.equal(me.body.user.username, 'dana.analyst');
    assert.equal(me.body.user.role, 'analyst');
    assert.equal(me.body.user.mustChangePassword, false);
    assert.equal((await apiAs(browser, '/users')).status, 403, 'an analyst may not list users');

    const audit = await lastAudit('auth.saml.login');
    assert.equal(audit.outcome, 'success');
    assert.equal(audit.actor_username, 'dana.analyst');
    assert.match(String(audit.reason), new RegExp(`issuer=${idp.entityId}; assertion=_`));
    assert.doesNotMatch(JSON.stringify(audit), /SignatureValue|PHNhbWxw/, 'no response in audit');

    const links = await test.appliance.database.sequelize.query<{ issuer: string }>(
      "SELECT issuer FROM oidc_links WHERE subject = 'dana.analyst'",
      { type: QueryTypes.SELECT },
    );
    assert.deepEqual(links, [{ issuer: `saml:${idp.entityId}` }]);
  });

  it('accepts a signed response around an unsigned assertion', async function () {
    idp.plan = { ...analyst, signed: 'response' };
    const browser = new TestBrowser(ca);
    const landing = await postToAcs(browser, await formFromProvider(browser));

    assert.equal(landing.status, 303, landing.body);
    assert.equal((await apiAs(browser, '/auth/me')).body.user.username, 'dana.analyst');
  });

  it('updates the role after a group change', async function () {
    idp.plan = { nameId: 'erin', attributes: { groups: ['soc-analysts'] } };
    const first = new TestBrowser(ca);
    await postToAcs(first, await formFromProvider(first));
    const before = await apiAs(first, '/auth/me');
    assert.equal(before.body.user.role, 'analyst');

    idp.plan = { nameId: 'erin', attributes: { groups: ['prompt-authors'] } };
    const second = new TestBrowser(ca);
    await postToAcs(second, await formFromProvider(second));
    const after = await apiAs(second, '/auth/me');
    assert.equal(after.body.user.role, 'author');
    assert.equal(after.body.user.id, before.body.user.id);
  });

  it('rejects a signature by another key', async function () {
    const page = await expectRejected({ signingKey: 'other' }, 401, 'saml_signature_invalid');
    assert.match(problemOf(page).detail, /SAML_IDP_CERT_FILE/);
  });

  it('rejects a tampered attribute', async function () {
    await expectRejected(
      {
        attributes: { groups: ['soc-analysts'] },
        tamper: (xml) => xml.replace('>soc-analysts<', '>prompt-authors<'),
      },
      401,
      'saml_signature_invalid',
    );
  });

  it('rejects a wrong audience', async function () {
    const page = await expectRejected(
      { audience: 'https://other-sp.example.test/metadata' },
      401,
      'saml_audience_mismatch',
    );
    assert.match(problemOf(page).detail, /entity id/);
  });

  it('rejects an expired assertion', async function () {
    const page = await expectRejected(
      { notBeforeSeconds: -900, notOnOrAfterSeconds: -300 },
      401,
      'saml_assertion_expired',
    );
    assert.match(problemOf(page).detail, /SAML_CLOCK_SKEW_SECONDS/);
  });

  it('accepts an assertion within the clock skew', async function () {
    // NotBefore 30 s ahead of our clock is within the default 60 s skew.
    idp.plan = { ...analyst, notBeforeSeconds: 30 };
    const browser = new TestBrowser(ca);
    const landing = await postToAcs(browser, await formFromProvider(browser));
    assert.equal(landing.status, 303, landing.body);
  });

  it('rejects an assertion not yet valid beyond the skew', async function () {
    await expectRejected({ notBeforeSeconds: 600 }, 401, 'saml_assertion_expired');
  });

  it('rejects an unknown InResponseTo', async function () {
    await expectRejected(
      { inResponseTo: '_0123456789abcdef0123456789abcdef' },
      401,
      'saml_unsolicited_response',
    );
  });

  it('rejects an unsolicited response', async function () {
    await expectRejected({ inResponseTo: null }, 401, 'saml_unsolicited_response');
  });

  it('rejects a replayed form post', async function () {
    const browser = new TestBrowser(ca);
    const form = await formFromProvider(browser);
    const binding = browser.cookie('127.0.0.1', samlAttemptCookieName)!;
    assert.equal((await postToAcs(browser, form)).status, 303);

    browser.setCookie('127.0.0.1', samlAttemptCookieName, binding);
    const replay = await postToAcs(browser, form);
    assert.equal(replay.status, 400, replay.body);
    assert.match(problemOf(replay).detail, /already used/);
  });

  it('rejects a replayed assertion id', async function () {
    idp.plan = { ...analyst, assertionId: '_replayed-assertion-0001' };
    const first = new TestBrowser(ca);
    assert.equal((await postToAcs(first, await formFromProvider(first))).status, 303);

    // A new response to a new request, carrying the assertion ID already used.
    await expectRejected(
      { assertionId: '_replayed-assertion-0001' },
      401,
      'saml_assertion_replayed',
    );
  });

  it('rejects a post from another browser', async function () {
    const browser = new TestBrowser(ca);
    const form = await formFromProvider(browser);

    const other = new TestBrowser(ca);
    const page = await postToAcs(other, form);
    assert.equal(page.status, 400, page.body);
    assert.equal(other.cookie('127.0.0.1', sessionCookieName), undefined);
  });

  it('rejects a post without RelayState', async function () {
    const response = await test
      .anonymous()
      .request('POST', '/auth/saml/acs', 'SAMLResponse=PHNhbWxwOlJlc3BvbnNlLz4%3D', {
        'content-type': 'application/x-www-form-urlencoded',
      });
    assert.equal(response.status, 400);
    assert.equal(response.body.type, `${problemType}invalid_request`);
    assert.deepEqual(
      response.body.errors.map((error: { field: string }) => error.field),
      ['RelayState'],
    );
  });

  it('rejects unmapped groups with 403', async function () {
    const page = await expectRejected(
      { nameId: 'frank', attributes: { groups: ['marketing'] } },
      403,
      'forbidden',
    );
    assert.match(problemOf(page).detail, /SAML_GROUP_ROLE_MAP/);

    const users = await test.appliance.database.sequelize.query(
      "SELECT id FROM users WHERE username = 'frank'",
      { type: QueryTypes.SELECT },
    );
    assert.deepEqual(users, [], 'a refused user is not provisioned');
  });

  it('rejects a provider error status', async function () {
    const page = await expectRejected(
      { failureStatus: 'AuthnFailed' },
      401,
      'saml_sign_in_refused',
    );
    assert.match(problemOf(page).detail, /did not authenticate you/);
  });

  it('rejects a transient NameID', async function () {
    await expectRejected(
      { nameIdFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient' },
      401,
      'saml_response_invalid',
    );
  });

  it('never links to a local user by name', async function () {
    idp.plan = { nameId: 'admin', attributes: { groups: ['soc-analysts'] } };
    const browser = new TestBrowser(ca);
    const page = await postToAcs(browser, await formFromProvider(browser));
    assert.equal(page.status, 409, page.body);
    assert.equal(browser.cookie('127.0.0.1', sessionCookieName), undefined);
  });

  it('serves SP metadata naming the entity id and ACS', async function () {
    const response = await test.anonymous().request('GET', '/auth/saml/metadata');
    assert.equal(response.status, 200);
    assert.match(String(response.headers['content-type']), /application\/samlmetadata\+xml/);

    const xml = String(response.body);
    const base = new URL('/api/v1/auth/saml/', test.appliance.url).href;
    assert.match(xml, new RegExp(`entityID="${base}metadata"`));
    assert.match(xml, new RegExp(`Location="${base}acs"`));
    assert.match(xml, /HTTP-POST/);
  });

  it('keeps other routes JSON-only', async function () {
    const response = await test
      .anonymous()
      .request('POST', '/auth/login', 'username=admin&password=x', {
        'content-type': 'application/x-www-form-urlencoded',
      });
    assert.equal(response.status, 415);
  });

  it('fails closed without audit record', async function () {
    idp.plan = { nameId: 'grace', attributes: { groups: ['soc-analysts'] } };
    const browser = new TestBrowser(ca);
    const form = await formFromProvider(browser);
    const sequelize = test.appliance.database.sequelize;
    const usedBefore = await sequelize.query('SELECT assertion_id FROM saml_used_assertions', {
      type: QueryTypes.SELECT,
    });
    await sequelize.query(
      "CREATE TRIGGER audit_unavailable BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    );
    try {
      const page = await postToAcs(browser, form);
      assert.equal(page.status, 503, page.body);
      assert.equal(browser.cookie('127.0.0.1', sessionCookieName), undefined);
    } finally {
      await sequelize.query('DROP TRIGGER audit_unavailable');
    }

    const users = await sequelize.query("SELECT id FROM users WHERE username = 'grace'", {
      type: QueryTypes.SELECT,
    });
    assert.deepEqual(users, []);
    const usedAfter = await sequelize.query('SELECT assertion_id FROM saml_used_assertions', {
      type: QueryTypes.SELECT,
    });
    assert.deepEqual(usedAfter, usedBefore, 'the assertion id was not recorded');
  });
});

describe('SAML sign-in when not configured @integration', function () {
  this.timeout(60_000);
  let test: TestAppliance;

  before(async function () {
    test = await startTestAppliance();
  });

  after(async function () {
    await test?.close();
  });

  for (const [method, route] of [
    ['GET', '/auth/saml/login'],
    ['GET', '/auth/saml/metadata'],
    ['POST', '/auth/saml/acs'],
  ]) {
    it(`answers ${method} ${route} with 404`, async function () {
      const response = await test
        .anonymous()
        .request(method, route, method === 'POST' ? 'SAMLResponse=x&RelayState=y' : undefined, {
          'content-type': 'application/x-www-form-urlencoded',
        });
      assert.equal(response.status, 404);
      assert.equal(response.body.type, `${problemType}saml_not_configured`);
      assert.match(response.body.detail, /SAML_IDP_SSO_URL/);
    });
  }
});
