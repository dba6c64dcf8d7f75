import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { QueryTypes } from 'sequelize';

import { mfaChallengeCookieName } from '../identity/mfa-challenges';
import type { ApiClient, ApiResponse } from '../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../testing/harness';

/** Computes a TOTP code with oathtool (RFC 6238, SHA-1, 6 digits, 30 s), `offsetSeconds` from now. */
function oathtoolCode(secret: string, offsetSeconds = 0): string {
  const at = Math.floor(Date.now() / 1000) + offsetSeconds;
  return execFileSync('oathtool', ['--totp', '-b', '-N', `@${at}`, secret], {
    encoding: 'utf8',
  }).trim();
}

function challengeCookie(response: ApiResponse): string {
  const lines = [response.headers['set-cookie'] ?? []].flat();
  const line = lines.find((candidate) => candidate.startsWith(`${mfaChallengeCookieName}=`));
  assert.ok(line, 'the login response sets the MFA challenge cookie');
  return line.split(';')[0];
}

async function waitForRotation(client: ApiClient, id: string): Promise<{ state: string }> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const response = await client.get(`/keys/rotations/${id}`);
    if (response.body.state !== 'running') return response.body;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`rotation ${id} still running after 5 s`);
}

describe('TOTP keys under master key rotation @integration', function () {
  this.timeout(120_000);
  let test: TestAppliance;
  let admin: ApiClient;
  let user: { client: ApiClient; username: string; password: string };
  let secret: string;

  before(async function () {
    test = await startTestAppliance();
    admin = await test.admin();
    user = await test.userWithRole('author');

    const enrolment = await user.client.post('/auth/mfa/totp/enroll');
    assert.equal(enrolment.status, 201, JSON.stringify(enrolment.body));
    secret = enrolment.body.secret;
    const confirmed = await user.client.post('/auth/mfa/totp/confirm', {
      code: oathtoolCode(secret),
    });
    assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
  });

  after(async function () {
    await test?.close();
  });

  it('rotation rewraps the TOTP key', async function () {
    const rotated = await admin.post('/keys/rotate');
    assert.equal(rotated.status, 202, JSON.stringify(rotated.body));
    assert.equal((await waitForRotation(admin, rotated.body.id)).state, 'completed');

    const rows = await test.appliance.database.sequelize.query<{ master_key_uri: string }>(
      'SELECT master_key_uri FROM user_totp',
      { type: QueryTypes.SELECT },
    );
    assert.deepEqual(
      rows.map((row) => row.master_key_uri),
      [rotated.body.keyUri],
    );
  });

  it('codes verify after version 1 retires', async function () {
    const retired = await admin.request('PUT', '/keys/master/minimum-version', {
      minimumVersion: 2,
    });
    assert.equal(retired.status, 200, JSON.stringify(retired.body));

    // The next step's code: the confirmation already used the current step.
    const client = test.anonymous();
    const login = await client.post('/auth/login', {
      username: user.username,
      password: user.password,
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    assert.equal(login.body.mfaRequired, true);
    const verified = await client.request(
      'POST',
      '/auth/mfa/verify',
      { code: oathtoolCode(secret, 30) },
      { cookie: challengeCookie(login) },
    );
    assert.equal(verified.status, 200, JSON.stringify(verified.body));
  });

  it('new enrolments use the active version', async function () {
    const other = await test.userWithRole('analyst');
    const enrolment = await other.client.post('/auth/mfa/totp/enroll');
    assert.equal(enrolment.status, 201, JSON.stringify(enrolment.body));

    const rows = await test.appliance.database.sequelize.query<{ master_key_uri: string }>(
      `SELECT t.master_key_uri FROM user_totp t JOIN users u ON u.id = t.user_id
       WHERE u.username = :username`,
      { type: QueryTypes.SELECT, replacements: { username: other.username } },
    );
    assert.match(rows[0].master_key_uri, /object=vault-master-v2;/);
  });
});
