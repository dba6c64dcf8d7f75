import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { QueryTypes } from 'sequelize';

import type { ApiClient, ApiResponse } from '../../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../../testing/harness';
import { defaultRiskSettings } from '../risk/settings';
import { signInGuardsOf } from '../risk/sign-in-guards';
import { deviceCookieName } from './devices';

/** Computes a TOTP code with oathtool (RFC 6238, SHA-1, 6 digits, 30 s), `offsetSeconds` from now. */
function oathtoolCode(secret: string, offsetSeconds = 0): string {
  const at = Math.floor(Date.now() / 1000) + offsetSeconds;
  return execFileSync('oathtool', ['--totp', '-b', '-N', `@${at}`, secret], {
    encoding: 'utf8',
  }).trim();
}

/** Keeps every cookie the appliance sets, like a browser profile, on top of an ApiClient. */
class CookieJar {
  readonly cookies = new Map<string, string>();
  readonly setCookieLines: string[] = [];

  constructor(private readonly client: ApiClient) {}

  async request(method: string, path: string, body?: unknown): Promise<ApiResponse> {
    const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    const response = await this.client.request(method, path, body, cookie ? { cookie } : {});
    for (const line of [response.headers['set-cookie'] ?? []].flat()) {
      this.setCookieLines.push(line);
      const [pair] = line.split(';');
      const name = pair.slice(0, pair.indexOf('='));
      const value = pair.slice(pair.indexOf('=') + 1);
      if (value && !/Expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.set(name, value);
      else this.cookies.delete(name);
    }
    return response;
  }
}

describe('trusted devices @integration', function () {
  this.timeout(120_000);

  let test: TestAppliance;
  let username: string;
  let password: string;
  let userId: string;
  let secret: string;
  let browser: CookieJar;
  let deviceId: string;
  let recoveryCodes: string[];
  let totpUsed = false;

  before(async function () {
    test = await startTestAppliance();
    const user = await test.userWithRole('author');
    username = user.username;
    password = user.password;
    userId = (await user.client.get('/auth/me')).body.user.id;

    const enrolment = await user.client.post('/auth/mfa/totp/enroll');
    secret = enrolment.body.secret;
    const confirmed = await user.client.post('/auth/mfa/totp/confirm', {
      code: oathtoolCode(secret),
    });
    assert.equal(confirmed.status, 200);
    recoveryCodes = confirmed.body.recoveryCodes;
    browser = new CookieJar(test.anonymous());
  });

  after(async function () {
    await test?.close();
  });

  /** Signs in with the password and, when asked, a second factor. */
  async function signIn(jar: CookieJar, withPassword = password) {
    await jar.request('POST', '/auth/logout');
    const login = await jar.request('POST', '/auth/login', { username, password: withPassword });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    if (!login.body.mfaRequired) return { mfaRequired: false };

    // The appliance accepts each TOTP time step once, so later sign-ins use recovery codes.
    const verified = await jar.request(
      'POST',
      '/auth/mfa/verify',
      totpUsed ? { recoveryCode: recoveryCodes.shift() } : { code: oathtoolCode(secret, 30) },
    );
    totpUsed = true;
    assert.equal(verified.status, 200, JSON.stringify(verified.body));
    return { mfaRequired: true };
  }

  async function currentDevice() {
    const listed = await browser.request('GET', '/auth/devices');
    assert.equal(listed.status, 200);
    return listed.body.items.find((item: { current: boolean }) => item.current);
  }

  async function lastLoginReason(): Promise<string> {
    const rows = await test.appliance.database.sequelize.query<{ reason: string }>(
      `SELECT reason FROM audit_records WHERE action = 'auth.login' AND actor_username = :username
       ORDER BY seq DESC LIMIT 1`,
      { type: QueryTypes.SELECT, replacements: { username } },
    );
    return rows[0]?.reason ?? '';
  }

  it('issues a device cookie at sign-in and stores only its hash', async function () {
    const { mfaRequired } = await signIn(browser);
    assert.equal(mfaRequired, true);

    const line = browser.setCookieLines.find((entry) => entry.startsWith(`${deviceCookieName}=`));
    assert.ok(line, 'the sign-in sets the device cookie');
    assert.match(line, /HttpOnly/);
    assert.match(line, /Secure/);
    assert.match(line, /SameSite=Strict/);
    assert.match(line, /Path=\//);
    assert.match(line, /Max-Age=34560000/);

    const cookie = browser.cookies.get(deviceCookieName)!;
    const rows = await test.appliance.database.sequelize.query<Record<string, unknown>>(
      'SELECT * FROM user_devices WHERE user_id = :userId',
      { type: QueryTypes.SELECT, replacements: { userId } },
    );
    // One row from the harness's first sign-in (its client keeps no device cookie) and this one.
    assert.equal(rows.length, 2);
    assert.equal(JSON.stringify(rows).includes(cookie), false);
  });

  it('lists the devices with the current one marked', async function () {
    const listed = await browser.request('GET', '/auth/devices');

    assert.equal(listed.status, 200);
    assert.equal(listed.body.items.length, 2);
    const current = listed.body.items.filter((item: { current: boolean }) => item.current);
    assert.equal(current.length, 1);
    assert.equal(current[0].trustedAt, null);
    deviceId = current[0].id;
  });

  it('refuses trust from a session without a second factor', async function () {
    const other = await test.userWithRole('analyst');
    const jar = new CookieJar(test.anonymous());
    await jar.request('POST', '/auth/login', {
      username: other.username,
      password: other.password,
    });
    const own = (await jar.request('GET', '/auth/devices')).body.items[0];

    const trusted = await jar.request('POST', `/auth/devices/${own.id}/trust`);

    assert.equal(trusted.status, 403);
    assert.match(trusted.body.detail, /passed a second factor/);
  });

  it("refuses to trust another user's device", async function () {
    const admin = new CookieJar(test.anonymous());
    await admin.request('POST', '/auth/login', {
      username: 'admin',
      password: 'admin-test-password-1',
    });
    const response = await browser.request('POST', `/auth/devices/${deviceId}/trust`);
    assert.equal(response.status, 200, 'the owner may');

    const adminDevices = await admin.request('GET', '/auth/devices');
    assert.equal(
      adminDevices.body.items.some((item: { id: string }) => item.id === deviceId),
      false,
    );
    const foreign = await admin.request('DELETE', `/auth/devices/${deviceId}`);
    assert.equal(foreign.status, 404);
  });

  it('skips the second factor on a trusted device', async function () {
    assert.ok((await currentDevice()).trustedAt);

    const { mfaRequired } = await signIn(browser);

    assert.equal(mfaRequired, false);
    assert.equal((await browser.request('GET', '/auth/me')).status, 200);
    assert.match(await lastLoginReason(), /band=low .*trusted_device$/);
  });

  it('asks for the second factor at medium risk despite trust', async function () {
    // Move the user's history to another address, so 127.0.0.1 is new, and add two failures.
    await test.appliance.database.sequelize.query(
      "UPDATE sign_in_events SET source_ip = '192.0.2.10' WHERE user_id = :userId",
      { replacements: { userId } },
    );
    const history = signInGuardsOf(test.appliance.identity)!.history;
    for (let attempt = 0; attempt < 2; attempt++)
      await history.record(
        { userId, sourceIp: '198.51.100.7', succeeded: false },
        defaultRiskSettings,
      );

    const { mfaRequired } = await signIn(browser);

    assert.equal(mfaRequired, true);
    assert.match(await lastLoginReason(), /^risk=45 band=medium .* step_up=mfa$/);
  });

  it('ends trust when the password changes', async function () {
    const newPassword = `${password}-changed`;
    const changed = await browser.request('POST', '/auth/password', {
      currentPassword: password,
      newPassword,
    });
    assert.equal(changed.status, 204);
    password = newPassword;

    assert.equal((await currentDevice()).trustedAt, null);
    const { mfaRequired } = await signIn(browser);
    assert.equal(mfaRequired, true);
  });

  it('revokes a device so its cookie counts as unknown', async function () {
    const revoked = await browser.request('DELETE', `/auth/devices/${deviceId}`);
    assert.equal(revoked.status, 204);
    assert.equal(await currentDevice(), undefined);
    const again = await browser.request('DELETE', `/auth/devices/${deviceId}`);
    assert.equal(again.status, 404);

    const oldCookie = browser.cookies.get(deviceCookieName);
    await signIn(browser);
    assert.notEqual(browser.cookies.get(deviceCookieName), oldCookie, 'a new device cookie');
    const current = await currentDevice();
    assert.ok(current);
    assert.notEqual(current.id, deviceId);
  });

  it('rejects a malformed device id naming the field', async function () {
    const response = await browser.request('POST', '/auth/devices/not-a-uuid/trust');

    assert.equal(response.status, 400);
    assert.equal(response.body.errors[0].field, 'params.id');
  });

  it('ends trust when the second factor is reset', async function () {
    const current = await currentDevice();
    assert.equal((await browser.request('POST', `/auth/devices/${current.id}/trust`)).status, 200);
    assert.ok((await currentDevice()).trustedAt);

    // What an MFA reset does to the data: the TOTP authenticator row goes.
    await test.appliance.database.sequelize.query('DELETE FROM user_totp WHERE user_id = :userId', {
      replacements: { userId },
    });

    assert.equal((await currentDevice()).trustedAt, null);
  });

  it('refuses sign-in and trust while the audit trail is unavailable', async function () {
    const sequelize = test.appliance.database.sequelize;
    const current = await currentDevice();
    const countRows = async (table: string) => {
      const [row] = await sequelize.query<{ n: number }>(
        `SELECT COUNT(*) AS n FROM ${table} WHERE user_id = :userId`,
        { type: QueryTypes.SELECT, replacements: { userId } },
      );
      return row.n;
    };
    const devicesBefore = await countRows('user_devices');
    const eventsBefore = await countRows('sign_in_events');

    await sequelize.query(
      "CREATE TRIGGER audit_unavailable BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    );
    try {
      const trust = await browser.request('POST', `/auth/devices/${current.id}/trust`);
      assert.equal(trust.status, 503);
      assert.equal(trust.body.type, 'urn:prompt-bank-appliance:problem:audit_unavailable');

      const fresh = new CookieJar(test.anonymous());
      const login = await fresh.request('POST', '/auth/login', { username, password });
      assert.equal(login.status, 503);
      assert.equal(fresh.cookies.size, 0, 'no session or device cookie');
    } finally {
      await sequelize.query('DROP TRIGGER audit_unavailable');
    }

    assert.equal((await currentDevice()).trustedAt, null);
    assert.equal(await countRows('user_devices'), devicesBefore);
    assert.equal(await countRows('sign_in_events'), eventsBefore);
  });
});
