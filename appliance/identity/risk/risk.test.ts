import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { QueryTypes } from 'sequelize';

import { startTestAppliance, type TestAppliance } from '../../testing/harness';
import { readSignInSettings, defaultRiskSettings } from './settings';
import { scoreSignIn } from './score';
import { signInGuardsOf, type SignInGuards } from './sign-in-guards';

const hourMs = 60 * 60 * 1000;
const dayMs = 24 * hourMs;

describe('sign-in risk scoring @integration', function () {
  this.timeout(120_000);

  let test: TestAppliance;
  let guards: SignInGuards;

  before(async function () {
    test = await startTestAppliance();
    guards = signInGuardsOf(test.appliance.identity)!;
  });

  after(async function () {
    await test?.close();
  });

  /** Creates a user through the admin API, without signing it in, and returns its id. */
  async function newUser(): Promise<{ id: string; username: string; password: string }> {
    const username = `risk-${crypto.randomBytes(3).toString('hex')}`;
    const password = `password-${crypto.randomBytes(8).toString('hex')}`;
    const created = await (
      await test.admin()
    ).post('/users', { username, password, role: 'author' });
    assert.equal(created.status, 201);
    return { id: created.body.id, username, password };
  }

  async function seed(userId: string, sourceIp: string, succeeded: boolean, at: Date) {
    await guards.history.record({ userId, sourceIp, succeeded, at }, defaultRiskSettings);
  }

  async function score(userId: string, sourceIp: string, now: Date, knownDevice: boolean) {
    const baseline = await guards.history.baselineOf(userId, now, defaultRiskSettings);
    return scoreSignIn({ knownDevice, sourceIp, now, ...baseline }, defaultRiskSettings);
  }

  async function loginAuditReason(username: string): Promise<string> {
    const rows = await test.appliance.database.sequelize.query<{ reason: string }>(
      `SELECT reason FROM audit_records WHERE action = 'auth.login' AND actor_username = :username
       ORDER BY seq DESC LIMIT 1`,
      { type: QueryTypes.SELECT, replacements: { username } },
    );
    return rows[0]?.reason ?? '';
  }

  it('scores a usual sign-in low', async function () {
    const user = await newUser();
    const now = new Date();
    for (let day = 1; day <= 6; day++)
      await seed(user.id, '192.0.2.10', true, new Date(now.getTime() - day * dayMs));

    const assessment = await score(user.id, '192.0.2.10', now, true);

    assert.equal(assessment.score, 0);
    assert.equal(assessment.band, 'low');
    assert.deepEqual(assessment.reasons, []);
  });

  it('flags an hour far from the history', async function () {
    const user = await newUser();
    const now = new Date('2026-12-04T03:00:00Z');
    for (let day = 1; day <= 6; day++)
      await seed(
        user.id,
        '192.0.2.10',
        true,
        new Date(Date.parse('2026-12-04T09:00:00Z') - day * dayMs),
      );

    const sameIp = await score(user.id, '192.0.2.10', now, true);
    assert.deepEqual(sameIp.reasons, ['unusual_hour+20']);
    assert.equal(sameIp.band, 'low');

    const newIp = await score(user.id, '198.51.100.7', now, true);
    assert.deepEqual(newIp.reasons, ['new_source_ip+25', 'unusual_hour+20']);
    assert.equal(newIp.band, 'medium');

    const nearHour = await score(user.id, '192.0.2.10', new Date('2026-12-04T07:30:00Z'), true);
    assert.deepEqual(nearHour.reasons, [], 'two hours either side count as usual');
  });

  it('ignores the hour until the history is long enough', async function () {
    const user = await newUser();
    const now = new Date('2026-12-04T03:00:00Z');
    await seed(user.id, '192.0.2.10', true, new Date('2026-12-03T15:00:00Z'));

    const assessment = await score(user.id, '192.0.2.10', now, true);
    assert.deepEqual(assessment.reasons, []);
  });

  it('counts failures after the last success only', async function () {
    const user = await newUser();
    const now = new Date();
    await seed(user.id, '192.0.2.10', false, new Date(now.getTime() - 10 * 60_000));
    await seed(user.id, '192.0.2.10', true, new Date(now.getTime() - 9 * 60_000));
    await seed(user.id, '192.0.2.10', false, new Date(now.getTime() - 2 * 60_000));
    await seed(user.id, '192.0.2.10', false, new Date(now.getTime() - 60_000));
    await seed(user.id, '192.0.2.10', false, new Date(now.getTime() - 20 * 60_000 - 9 * 60_000));

    const assessment = await score(user.id, '192.0.2.10', now, true);
    assert.deepEqual(assessment.reasons, ['recent_failures=2+20']);
  });

  it('caps the failure weight', async function () {
    const user = await newUser();
    const now = new Date();
    for (let minute = 1; minute <= 6; minute++)
      await seed(user.id, '192.0.2.10', false, new Date(now.getTime() - minute * 60_000));

    const assessment = await score(user.id, '192.0.2.10', now, false);
    assert.deepEqual(assessment.reasons, ['unknown_device+25', 'recent_failures=6+30']);
    assert.equal(assessment.band, 'medium');
  });

  it('signs in a low-risk user', async function () {
    const user = await newUser();

    const login = await test.anonymous().post('/auth/login', user);

    assert.equal(login.status, 200);
    assert.equal(login.body.user.username, user.username);
    assert.equal(
      await loginAuditReason(user.username),
      'risk=25 band=low reasons=unknown_device+25',
    );
  });

  it('allows a medium-risk user without a second factor and notes it', async function () {
    const user = await newUser();
    await seed(user.id, '192.0.2.10', true, new Date(Date.now() - dayMs));

    const login = await test.anonymous().post('/auth/login', user);

    assert.equal(login.status, 200);
    assert.equal(login.body.mfaRequired, undefined);
    assert.equal(
      await loginAuditReason(user.username),
      'risk=50 band=medium reasons=unknown_device+25,new_source_ip+25 step_up=unavailable',
    );
  });

  it('denies a high-risk sign-in with a problem', async function () {
    const user = await newUser();
    await seed(user.id, '192.0.2.10', true, new Date(Date.now() - dayMs));
    const client = test.anonymous();
    for (let attempt = 0; attempt < 3; attempt++) {
      const wrong = await client.post('/auth/login', { ...user, password: 'not-the-password' });
      assert.equal(wrong.status, 401);
    }

    const login = await client.post('/auth/login', user);

    assert.equal(login.status, 403);
    assert.equal(login.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.equal(login.body.type, 'urn:prompt-bank-appliance:problem:sign_in_risk_high');
    assert.match(login.body.detail, /device and network you used before/);
    assert.equal(login.headers['set-cookie'], undefined, 'no session cookie');
    assert.equal(
      await loginAuditReason(user.username),
      'sign_in_risk_high; risk=80 band=high reasons=unknown_device+25,new_source_ip+25,recent_failures=3+30',
    );
  });

  it('reads weights and thresholds from the environment', function () {
    const settings = readSignInSettings({
      RISK_WEIGHT_UNKNOWN_DEVICE: '0',
      RISK_MEDIUM_THRESHOLD: '30',
      RISK_HIGH_THRESHOLD: '60',
      DEVICE_TRUST_DAYS: '7',
    });
    assert.equal(settings.risk.unknownDevice, 0);
    assert.equal(settings.risk.mediumThreshold, 30);
    assert.equal(settings.risk.highThreshold, 60);
    assert.equal(settings.risk.newSourceIp, defaultRiskSettings.newSourceIp);
    assert.equal(settings.deviceTrustDays, 7);

    assert.throws(() => readSignInSettings({ RISK_WEIGHT_NEW_IP: '-5' }), /RISK_WEIGHT_NEW_IP/);
    assert.throws(
      () => readSignInSettings({ RISK_MEDIUM_THRESHOLD: '50', RISK_HIGH_THRESHOLD: '50' }),
      /RISK_HIGH_THRESHOLD=50: it must be greater than RISK_MEDIUM_THRESHOLD=50/,
    );
  });

  it('derives the WebAuthn relying party from the host', function () {
    assert.equal(readSignInSettings({}).webauthn.rpId, 'localhost');
    assert.equal(
      readSignInSettings({ APPLIANCE_HOST: 'appliance.example.internal' }).webauthn.rpId,
      'appliance.example.internal',
    );
    assert.deepEqual(
      readSignInSettings({
        WEBAUTHN_RP_ID: 'example.internal',
        WEBAUTHN_ORIGIN: 'https://appliance.example.internal:8443',
      }).webauthn.origins,
      ['https://appliance.example.internal:8443'],
    );
    assert.throws(() => readSignInSettings({ WEBAUTHN_RP_ID: '10.0.0.1' }), /WEBAUTHN_RP_ID/);
    assert.throws(
      () => readSignInSettings({ WEBAUTHN_ORIGIN: 'http://localhost:8443' }),
      /WEBAUTHN_ORIGIN: "http:\/\/localhost:8443" must use https/,
    );
  });
});
