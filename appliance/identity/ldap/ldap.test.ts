import assert from 'node:assert/strict';

import { QueryTypes } from 'sequelize';

import type { ApiResponse } from '../../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../../testing/harness';
import { activateTotp, challengeCookie, oathtoolCode } from '../../testing/accounts';
import { sessionCookieName } from '../sessions';
import {
  startTestDirectory,
  testBaseDn,
  testServiceDn,
  type TestDirectory,
} from './testing/test-directory';

interface AuditRow {
  outcome: string;
  actor_username: string | null;
  reason: string | null;
}

const groupRoleMap = JSON.stringify({ 'soc-analysts': 'analyst', 'prompt-authors': 'author' });

const people = [
  { uid: 'alice', password: 'alice-password-1', groups: ['soc-analysts'] },
  { uid: 'bob', password: 'bob-password-1', groups: ['marketing'] },
  { uid: 'carol', password: 'carol-password-1', groups: ['soc-analysts'] },
  { uid: 'dave', password: 'dave-password-1', groups: ['prompt-authors'] },
  { uid: 'erin', password: 'erin-password-1', groups: ['soc-analysts'] },
  { uid: 'frank', password: 'frank-password-1', groups: ['prompt-authors'] },
  { uid: 'grace', password: 'grace-password-1', groups: ['soc-analysts'] },
  // Same name as the local first admin: must not be linked to it.
  { uid: 'admin', password: 'admin-password-ldap', groups: ['soc-analysts'] },
];

describe('LDAP sign-in against a real slapd @integration', function () {
  this.timeout(120_000);
  let directory: TestDirectory;
  let test: TestAppliance;

  before(async function () {
    directory = await startTestDirectory(people);
    test = await startTestAppliance({
      env: {
        LDAP_URL: directory.url,
        LDAP_BASE_DN: testBaseDn,
        LDAP_BIND_DN: testServiceDn,
        LDAP_BIND_PASSWORD_FILE: directory.servicePasswordFile,
        LDAP_GROUP_ROLE_MAP: groupRoleMap,
        SCIM_GROUP_ROLE_MAP: groupRoleMap,
      },
    });
  });

  after(async function () {
    await test?.close();
    await directory?.close();
  });

  function login(username: string, password: string) {
    return test.anonymous().post('/auth/ldap/login', { username, password });
  }

  async function lastAudit(): Promise<AuditRow> {
    const [row] = await test.appliance.database.sequelize.query<AuditRow>(
      "SELECT outcome, actor_username, reason FROM audit_records WHERE action = 'auth.ldap.login' ORDER BY seq DESC LIMIT 1",
      { type: QueryTypes.SELECT },
    );
    return row;
  }

  function assertProblem(response: ApiResponse, status: number, code: string) {
    assert.equal(response.status, status, JSON.stringify(response.body));
    assert.equal(response.body.type, `urn:prompt-bank-appliance:problem:${code}`);
  }

  it('search-then-bind signs in and provisions', async function () {
    const client = test.anonymous();
    const response = await client.post('/auth/ldap/login', {
      username: 'alice',
      password: 'alice-password-1',
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.user.username, 'alice');
    assert.equal(response.body.user.role, 'analyst');
    assert.match(String(response.headers['set-cookie']), new RegExp(`${sessionCookieName}=`));

    const me = await client.get('/auth/me');
    assert.equal(me.status, 200);
    assert.equal(me.body.user.username, 'alice');

    const audit = await lastAudit();
    assert.equal(audit.outcome, 'success');
    assert.equal(audit.actor_username, 'alice');
    assert.match(audit.reason ?? '', /^ldap_subject=[0-9a-f-]{36}$/);
  });

  it('normalises the name with NFKC', async function () {
    const first = await login('alice', 'alice-password-1');
    // Full-width letters and upper case: the same directory user and local account.
    const second = await login('ＡＬＩＣＥ', 'alice-password-1');
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.equal(second.body.user.id, first.body.user.id);
  });

  it('rejects a wrong password', async function () {
    const response = await login('alice', 'wrong-password');
    assertProblem(response, 401, 'invalid_credentials');
    const audit = await lastAudit();
    assert.equal(audit.outcome, 'denied');
    assert.equal(audit.actor_username, 'alice');

    assertProblem(await login('nobody', 'whatever-1'), 401, 'invalid_credentials');
  });

  it('rejects names with filter characters', async function () {
    for (const username of ['*', 'alice)(uid=*', 'al*ce', 'back\\slash', 'nul\u0000', 'a,b=c']) {
      const response = await login(username, 'alice-password-1');
      assertProblem(response, 400, 'invalid_request');
      assert.equal(response.body.errors[0].field, 'username', username);
    }
  });

  it('locks the account like password sign-in', async function () {
    for (let attempt = 0; attempt < 5; attempt++)
      assertProblem(await login('dave', `wrong-${attempt}`), 401, 'invalid_credentials');

    const locked = await login('dave', 'dave-password-1');
    assertProblem(locked, 429, 'account_locked');
    assert.ok(Number(locked.headers['retry-after']) > 0);
  });

  it('rejects a user in no mapped group', async function () {
    const response = await login('bob', 'bob-password-1');
    assertProblem(response, 403, 'forbidden');
    assert.match(response.body.detail, /LDAP_GROUP_ROLE_MAP/);
    const [row] = await test.appliance.database.sequelize.query(
      "SELECT id FROM users WHERE username = 'bob'",
      { type: QueryTypes.SELECT },
    );
    assert.equal(row, undefined, 'no account is created');
  });

  it('rejects a user without mapped groups', async function () {
    const first = await login('carol', 'carol-password-1');
    assert.equal(first.status, 200, JSON.stringify(first.body));

    await directory.removeFromGroup('carol', 'soc-analysts');
    assertProblem(await login('carol', 'carol-password-1'), 403, 'forbidden');
  });

  it('never links to a local account by name', async function () {
    const response = await login('admin', 'admin-password-ldap');
    assertProblem(response, 409, 'conflict');
  });

  it('adopts the account SCIM created', async function () {
    const key = (
      await (
        await test.admin()
      ).post('/api-keys', {
        name: 'scim',
        permissions: ['users:read', 'users:create', 'users:update'],
        expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
      })
    ).body.key as string;
    const scim = (method: string, path: string, body: unknown) =>
      test.anonymous().request(method, `/scim/v2${path}`, body, { authorization: `Bearer ${key}` });

    const created = await scim('POST', '/Users', { userName: 'erin' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    // In no SCIM group yet, so the account is disabled and the sign-in is rejected.
    assertProblem(await login('erin', 'erin-password-1'), 403, 'forbidden');

    const group = await scim('POST', '/Groups', {
      displayName: 'soc-analysts',
      members: [{ value: created.body.id }],
    });
    assert.equal(group.status, 201, JSON.stringify(group.body));
    const response = await login('erin', 'erin-password-1');
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.user.id, created.body.id);
  });

  it('asks for an enrolled second factor', async function () {
    const first = test.anonymous();
    assert.equal(
      (await first.post('/auth/ldap/login', { username: 'grace', password: 'grace-password-1' }))
        .status,
      200,
    );
    const secret = await activateTotp(first);

    const client = test.anonymous();
    const login = await client.post('/auth/ldap/login', {
      username: 'grace',
      password: 'grace-password-1',
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    assert.equal(login.body.mfaRequired, true);
    assert.ok(login.body.methods.includes('totp'));
    assert.doesNotMatch(String(login.headers['set-cookie']), new RegExp(`${sessionCookieName}=`));
    assert.equal((await client.get('/auth/me')).status, 401);

    // The next step's code: enrolment used this one.
    const verified = await client.request(
      'POST',
      '/auth/mfa/verify',
      { code: oathtoolCode(secret, 30) },
      { cookie: challengeCookie(login) },
    );
    assert.equal(verified.status, 200, JSON.stringify(verified.body));
    assert.equal((await client.get('/auth/me')).body.user.username, 'grace');
  });

  it('fails closed without audit record', async function () {
    const sequelize = test.appliance.database.sequelize;
    await sequelize.query(
      "CREATE TRIGGER audit_unavailable BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    );
    let response: ApiResponse;
    try {
      response = await login('frank', 'frank-password-1');
    } finally {
      await sequelize.query('DROP TRIGGER audit_unavailable');
    }

    assertProblem(response, 503, 'audit_unavailable');
    assert.doesNotMatch(
      String(response.headers['set-cookie']),
      new RegExp(`${sessionCookieName}=`),
    );
    const users = await sequelize.query("SELECT id FROM users WHERE username = 'frank'", {
      type: QueryTypes.SELECT,
    });
    assert.deepEqual(users, []);
  });

  it('answers 503 when the directory is down', async function () {
    await directory.stop();
    const response = await login('alice', 'alice-password-1');
    assertProblem(response, 503, 'ldap_unavailable');
    assert.equal((await lastAudit()).outcome, 'failure');
  });
});

describe('LDAP direct bind @integration', function () {
  this.timeout(120_000);
  let directory: TestDirectory;
  let test: TestAppliance;

  before(async function () {
    directory = await startTestDirectory(people);
    test = await startTestAppliance({
      env: {
        LDAP_URL: directory.url,
        LDAP_BASE_DN: testBaseDn,
        LDAP_BIND_DN_TEMPLATE: `uid={username},ou=people,${testBaseDn}`,
        LDAP_GROUP_ROLE_MAP: groupRoleMap,
      },
    });
  });

  after(async function () {
    await test?.close();
    await directory?.close();
  });

  it('binds with the DN template', async function () {
    const response = await test
      .anonymous()
      .post('/auth/ldap/login', { username: 'dave', password: 'dave-password-1' });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.user.role, 'author');

    const wrong = await test
      .anonymous()
      .post('/auth/ldap/login', { username: 'dave', password: 'wrong-password' });
    assert.equal(wrong.status, 401);
  });
});
