import assert from 'node:assert/strict';

import { QueryTypes } from 'sequelize';

import type { ApiClient } from '../testing/api-client';
import { challengeCookie, oathtoolCode, passwordStep } from '../testing/accounts';
import { startTestAppliance, type TestAppliance } from '../testing/harness';

function verify(client: ApiClient, cookie: string, body: unknown) {
  return client.request('POST', '/auth/mfa/verify', body, { cookie });
}

describe('TOTP second factor @integration', function () {
  this.timeout(120_000);
  let test: TestAppliance;
  let user: { client: ApiClient; username: string; password: string };
  let secret: string;
  let recoveryCodes: string[];

  before(async function () {
    test = await startTestAppliance();
    user = await test.userWithRole('author');
  });

  after(async function () {
    await test?.close();
  });

  it('enrols with a URI, a QR code and a sealed secret', async function () {
    const enrolment = await user.client.post('/auth/mfa/totp/enroll');

    assert.equal(enrolment.status, 201);
    secret = enrolment.body.secret;
    assert.match(secret, /^[A-Z2-7]{16,}$/);
    assert.match(enrolment.body.otpauthUri, /^otpauth:\/\/totp\//);
    assert.match(enrolment.body.otpauthUri, new RegExp(`secret=${secret}`));
    assert.match(enrolment.body.qrCodeDataUrl, /^data:image\/png;base64,/);

    const [row] = await test.appliance.database.sequelize.query<{ sealed_secret: Buffer }>(
      'SELECT sealed_secret FROM user_totp',
      { type: QueryTypes.SELECT },
    );
    assert.equal(Buffer.from(row.sealed_secret).includes(Buffer.from(secret)), false);
  });

  it('keeps password-only login before confirmation', async function () {
    const login = await test
      .anonymous()
      .post('/auth/login', { username: user.username, password: user.password });

    assert.equal(login.status, 200);
    assert.equal(login.body.user.username, user.username);
  });

  it('rejects a wrong confirmation code naming the field', async function () {
    const wrong = oathtoolCode(secret) === '000000' ? '111111' : '000000';
    const response = await user.client.post('/auth/mfa/totp/confirm', { code: wrong });

    assert.equal(response.status, 400);
    assert.equal(response.body.errors[0].field, 'code');
  });

  it('activates with an oathtool code and returns recovery codes', async function () {
    const response = await user.client.post('/auth/mfa/totp/confirm', {
      code: oathtoolCode(secret),
    });

    assert.equal(response.status, 200);
    recoveryCodes = response.body.recoveryCodes;
    assert.equal(recoveryCodes.length, 10);
    assert.equal(new Set(recoveryCodes).size, 10);
    assert.equal((await user.client.get('/auth/me')).body.mfa.totp, true);
  });

  it('holds login in a pending state without a session', async function () {
    const client = test.anonymous();
    const login = await client.post('/auth/login', {
      username: user.username,
      password: user.password,
    });

    assert.equal(login.status, 200);
    assert.equal(login.body.mfaRequired, true);
    assert.equal(login.body.user, undefined);
    const cookies = [login.headers['set-cookie'] ?? []].flat();
    assert.equal(
      cookies.some((line) => line.startsWith('__Host-appliance_session=')),
      false,
    );
    assert.match(challengeCookie(login), /^__Host-appliance_mfa_challenge=/);
    assert.equal((await client.get('/auth/me')).status, 401);
  });

  it('signs in with an oathtool code and rejects its replay', async function () {
    // The next step's code: the confirmation already used the current step.
    const code = oathtoolCode(secret, 30);

    const client = test.anonymous();
    const cookie = await passwordStep(client, user.username, user.password);
    const verified = await verify(client, cookie, { code });
    assert.equal(verified.status, 200);
    assert.equal(verified.body.user.username, user.username);
    assert.equal((await client.get('/auth/me')).status, 200);

    const replayClient = test.anonymous();
    const replayCookie = await passwordStep(replayClient, user.username, user.password);
    const replay = await verify(replayClient, replayCookie, { code });
    assert.equal(replay.status, 401);
    assert.match(replay.body.type, /invalid_mfa_code$/);
    assert.equal((await replayClient.get('/auth/me')).status, 401);
  });

  it('accepts a recovery code once', async function () {
    const recoveryCode = recoveryCodes[0];

    const client = test.anonymous();
    const cookie = await passwordStep(client, user.username, user.password);
    assert.equal((await verify(client, cookie, { recoveryCode })).status, 200);

    const again = test.anonymous();
    const againCookie = await passwordStep(again, user.username, user.password);
    const reused = await verify(again, againCookie, { recoveryCode });
    assert.equal(reused.status, 401);
  });

  it('rejects verify without a pending login', async function () {
    const response = await test.anonymous().post('/auth/mfa/verify', { code: '123456' });

    assert.equal(response.status, 401);
    assert.match(response.body.type, /unauthenticated$/);
  });

  it('rejects a body with both factors naming the field', async function () {
    const client = test.anonymous();
    const cookie = await passwordStep(client, user.username, user.password);
    const response = await verify(client, cookie, { code: '123456', recoveryCode: 'AAAA' });

    assert.equal(response.status, 400);
    assert.equal(response.body.errors[0].field, 'code');
  });

  it('audits enrolment and verification', async function () {
    const rows = await test.appliance.database.sequelize.query<{
      action: string;
      outcome: string;
    }>("SELECT action, outcome FROM audit_records WHERE action LIKE 'auth.mfa.%'", {
      type: QueryTypes.SELECT,
    });
    const seen = new Set(rows.map((row) => `${row.action} ${row.outcome}`));

    assert.ok(seen.has('auth.mfa.enroll success'));
    assert.ok(seen.has('auth.mfa.confirm success'));
    assert.ok(seen.has('auth.mfa.verify success'));
    assert.ok(seen.has('auth.mfa.verify denied'));
  });
});
