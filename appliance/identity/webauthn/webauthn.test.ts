import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { BrowserContext, CDPSession, Page } from 'playwright-core';
import { QueryTypes } from 'sequelize';

import { launchChromium } from '../../../console/e2e/browser';
import { startTestAppliance, type TestAppliance } from '../../testing/harness';

interface PageResponse {
  status: number;
  body: any;
}

/** Sends an API request from the page, so the browser carries and stores the cookies. */
function api(page: Page, method: string, apiPath: string, body?: unknown): Promise<PageResponse> {
  return page.evaluate(
    async ({ method, apiPath, body }) => {
      const response = await fetch(`/api/v1${apiPath}`, {
        method,
        headers: {
          'content-type': 'application/json',
          'x-requested-with': 'appliance-console',
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined };
    },
    { method, apiPath, body },
  );
}

/** Runs navigator.credentials.create() with the server's JSON options and returns the credential's JSON. */
function createCredential(page: Page, options: unknown): Promise<any> {
  return page.evaluate(async (json) => {
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(json as any);
    const credential = (await navigator.credentials.create({ publicKey })) as PublicKeyCredential;
    return credential.toJSON();
  }, options);
}

/** Runs navigator.credentials.get() with JSON options and returns the assertion's JSON. */
function getAssertion(page: Page, options: unknown): Promise<any> {
  return page.evaluate(async (json) => {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(json as any);
    const credential = (await navigator.credentials.get({ publicKey })) as PublicKeyCredential;
    return credential.toJSON();
  }, options);
}

/** Returns a random base64url challenge, as a client would forge one. */
function forgedChallenge(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url');
}

describe('WebAuthn security keys in Chromium @integration', function () {
  this.timeout(180_000);

  let test: TestAppliance;
  let context: BrowserContext;
  let page: Page;
  let cdp: CDPSession;
  let authenticatorId: string;
  let userDataDir: string;
  let alice: { username: string; password: string };
  let bob: { username: string; password: string };
  let firstAssertion: any;
  let bobCredentialId: string;

  before(async function () {
    test = await startTestAppliance();
    alice = await test.userWithRole('author');
    bob = await test.userWithRole('analyst');

    // Browsers reject an IP address as the relying-party id, so the page uses the
    // name localhost; the default WEBAUTHN_RP_ID for a loopback address is localhost.
    const origin = `https://localhost:${new URL(test.appliance.url).port}`;

    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'webauthn-chromium-'));
    context = await launchChromium(userDataDir);
    page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${origin}/`);

    cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    await addAuthenticator();
  });

  /** Adds a CTAP2 platform authenticator that verifies the user and confirms presence by itself. */
  async function addAuthenticator() {
    const added = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    authenticatorId = added.authenticatorId;
  }

  after(async function () {
    await context?.close();
    if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
    await test?.close();
  });

  async function signInWithPassword(user: { username: string; password: string }) {
    await api(page, 'POST', '/auth/logout');
    return api(page, 'POST', '/auth/login', user);
  }

  /** Signs in with the password and completes the MFA challenge with the virtual authenticator. */
  async function signInWithKey(user: { username: string; password: string }) {
    const login = await signInWithPassword(user);
    assert.equal(login.body.mfaRequired, true);
    const options = await api(page, 'POST', '/auth/mfa/webauthn/options');
    const assertion = await getAssertion(page, options.body);
    const verified = await api(page, 'POST', '/auth/mfa/webauthn/verify', { response: assertion });
    assert.equal(verified.status, 200, JSON.stringify(verified.body));
  }

  async function registerKey(name: string) {
    const options = await api(page, 'POST', '/auth/mfa/webauthn/register/options');
    assert.equal(options.status, 200, JSON.stringify(options.body));
    assert.equal(options.body.rp.id, 'localhost');
    assert.equal(options.body.authenticatorSelection.userVerification, 'preferred');

    const credential = await createCredential(page, options.body);
    const verified = await api(page, 'POST', '/auth/mfa/webauthn/register/verify', {
      name,
      response: credential,
    });
    return { credential, verified };
  }

  it('registers a key and stores its public key', async function () {
    const login = await signInWithPassword(alice);
    assert.equal(login.status, 200);

    const { verified } = await registerKey('Virtual key');
    assert.equal(verified.status, 201, JSON.stringify(verified.body));
    assert.equal(verified.body.name, 'Virtual key');

    const listed = await api(page, 'GET', '/auth/mfa/webauthn/credentials');
    assert.equal(listed.body.items.length, 1);
    assert.equal(listed.body.items[0].publicKey, undefined);

    const rows = await test.appliance.database.sequelize.query<{ public_key: Buffer }>(
      'SELECT public_key FROM webauthn_credentials',
      { type: QueryTypes.SELECT },
    );
    assert.equal(rows.length, 1);
    // The smallest key the appliance offers is an Ed25519 COSE key of 42 bytes (kty, alg, crv and a 32-byte x).
    assert.ok(Buffer.from(rows[0].public_key).length >= 42, 'a COSE public key is stored');
  });

  it('refuses key changes before the session passes MFA', async function () {
    const options = await api(page, 'POST', '/auth/mfa/webauthn/register/options');

    assert.equal(options.status, 403);
    assert.match(options.body.detail, /did not pass a second factor/);
  });

  it('completes the MFA challenge with the key', async function () {
    const login = await signInWithPassword(alice);
    assert.equal(login.status, 200);
    assert.equal(login.body.mfaRequired, true);
    assert.ok(login.body.methods.includes('webauthn'));
    assert.equal((await api(page, 'GET', '/auth/me')).status, 401);

    const options = await api(page, 'POST', '/auth/mfa/webauthn/options');
    assert.equal(options.status, 200);
    assert.equal(options.body.userVerification, 'preferred');
    assert.equal(options.body.allowCredentials.length, 1);

    firstAssertion = await getAssertion(page, options.body);
    const verified = await api(page, 'POST', '/auth/mfa/webauthn/verify', {
      response: firstAssertion,
    });
    assert.equal(verified.status, 200, JSON.stringify(verified.body));
    assert.equal(verified.body.user.username, alice.username);
    assert.equal((await api(page, 'GET', '/auth/me')).status, 200);

    const [row] = await test.appliance.database.sequelize.query<{ counter: number }>(
      'SELECT MAX(counter) AS counter FROM webauthn_credentials',
      { type: QueryTypes.SELECT },
    );
    assert.ok(row.counter > 0, 'the signature counter is stored');
  });

  it('rejects an assertion over a wrong challenge', async function () {
    const login = await signInWithPassword(alice);
    assert.equal(login.body.mfaRequired, true);
    const options = await api(page, 'POST', '/auth/mfa/webauthn/options');

    const forged = await getAssertion(page, { ...options.body, challenge: forgedChallenge() });
    const verified = await api(page, 'POST', '/auth/mfa/webauthn/verify', { response: forged });

    assert.equal(verified.status, 401);
    assert.equal(
      verified.body.type,
      'urn:prompt-bank-appliance:problem:invalid_webauthn_assertion',
    );
    assert.match(verified.body.detail, /challenge/i);
    assert.equal((await api(page, 'GET', '/auth/me')).status, 401);
  });

  it('rejects a replayed assertion', async function () {
    const login = await signInWithPassword(alice);
    assert.equal(login.body.mfaRequired, true);
    const options = await api(page, 'POST', '/auth/mfa/webauthn/options');
    assert.equal(options.status, 200);

    const replayed = await api(page, 'POST', '/auth/mfa/webauthn/verify', {
      response: firstAssertion,
    });

    assert.equal(replayed.status, 401);
    assert.equal(
      replayed.body.type,
      'urn:prompt-bank-appliance:problem:invalid_webauthn_assertion',
    );
    assert.equal((await api(page, 'GET', '/auth/me')).status, 401);
  });

  it("rejects another user's key", async function () {
    const bobLogin = await signInWithPassword(bob);
    assert.equal(bobLogin.status, 200);
    const { credential, verified } = await registerKey('Bob key');
    assert.equal(verified.status, 201);
    bobCredentialId = credential.id;

    const login = await signInWithPassword(alice);
    assert.equal(login.body.mfaRequired, true);
    const options = await api(page, 'POST', '/auth/mfa/webauthn/options');
    const foreign = await getAssertion(page, {
      ...options.body,
      allowCredentials: [{ id: bobCredentialId, type: 'public-key' }],
    });
    const verifiedForeign = await api(page, 'POST', '/auth/mfa/webauthn/verify', {
      response: foreign,
    });

    assert.equal(verifiedForeign.status, 401);
    assert.match(verifiedForeign.body.detail, /not registered to this account/);
    assert.equal((await api(page, 'GET', '/auth/me')).status, 401);
  });

  it('steps up a session with the key', async function () {
    // Bob has a key but no trusted device, so his sign-in requires the key.
    await signInWithKey(bob);

    const stepUpOptions = await api(page, 'POST', '/auth/mfa/webauthn/step-up/options');
    assert.equal(stepUpOptions.status, 200);
    const stepUp = await getAssertion(page, stepUpOptions.body);
    const verified = await api(page, 'POST', '/auth/mfa/webauthn/step-up/verify', {
      response: stepUp,
    });
    assert.equal(verified.status, 200, JSON.stringify(verified.body));
    assert.equal(verified.body.secondFactor, 'webauthn');

    const reused = await api(page, 'POST', '/auth/mfa/webauthn/step-up/verify', {
      response: stepUp,
    });
    assert.equal(reused.status, 401);
  });

  it('audits sign-ins with the key', async function () {
    const rows = await test.appliance.database.sequelize.query<{
      action: string;
      outcome: string;
    }>("SELECT action, outcome FROM audit_records WHERE action = 'auth.mfa.webauthn.verify'", {
      type: QueryTypes.SELECT,
    });
    assert.equal(rows.filter((row) => row.outcome === 'success').length, 2);
    assert.equal(rows.filter((row) => row.outcome === 'denied').length, 3);
  });

  it('adds, renames and deletes a key after MFA', async function () {
    await signInWithKey(alice);

    // The first authenticator contains a credential listed in excludeCredentials, so it rejects a second registration.
    await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
    await addAuthenticator();
    const { credential, verified } = await registerKey('Second key');
    assert.equal(verified.status, 201);
    const again = await api(page, 'POST', '/auth/mfa/webauthn/register/verify', {
      response: credential,
    });
    assert.equal(again.status, 400, 'the registration challenge is used up');
    assert.equal(again.body.errors[0].field, 'response');

    const renamed = await api(page, 'PATCH', `/auth/mfa/webauthn/credentials/${verified.body.id}`, {
      name: 'Spare key',
    });
    assert.equal(renamed.status, 204);
    const badName = await api(page, 'PATCH', `/auth/mfa/webauthn/credentials/${verified.body.id}`, {
      name: '',
    });
    assert.equal(badName.status, 400);
    assert.equal(badName.body.errors[0].field, 'name');

    const listed = await api(page, 'GET', '/auth/mfa/webauthn/credentials');
    assert.deepEqual(
      listed.body.items.map((item: any) => item.name),
      ['Virtual key', 'Spare key'],
    );
    const deleted = await api(page, 'DELETE', `/auth/mfa/webauthn/credentials/${verified.body.id}`);
    assert.equal(deleted.status, 204);
    const after = await api(page, 'GET', '/auth/mfa/webauthn/credentials');
    assert.deepEqual(
      after.body.items.map((item: any) => item.name),
      ['Virtual key'],
    );
  });
});
