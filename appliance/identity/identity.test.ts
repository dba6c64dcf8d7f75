import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { initialAdminPasswordFile } from './service';
import { startTestAppliance, type TestAppliance } from '../testing/harness';

describe('identity @integration', function () {
  let test: TestAppliance;

  before(async function () {
    test = await startTestAppliance();
  });

  after(async function () {
    await test?.close();
  });

  it('makes the first admin change the one-time password', async function () {
    const passwordFile = path.join(test.appliance.config.secretsDir, initialAdminPasswordFile);
    assert.equal(fs.statSync(passwordFile).mode & 0o777, 0o600);
    const oneTimePassword = fs.readFileSync(passwordFile, 'utf8').trim();
    const client = test.anonymous();

    const login = await client.post('/auth/login', {
      username: 'admin',
      password: oneTimePassword,
    });
    assert.equal(login.status, 200);
    assert.equal(login.body.user.mustChangePassword, true);

    const blocked = await client.get('/users');
    assert.equal(blocked.status, 403);
    assert.match(blocked.body.type, /password_change_required$/);

    const changed = await client.post('/auth/password', {
      currentPassword: oneTimePassword,
      newPassword: 'a-new-admin-password',
    });
    assert.equal(changed.status, 204);
    assert.equal(fs.existsSync(passwordFile), false);
    assert.equal((await client.get('/users')).status, 200);

    // The harness signs in with its own password, so put that one back.
    await client.post('/auth/password', {
      currentPassword: 'a-new-admin-password',
      newPassword: 'admin-test-password-1',
    });
  });

  it('sets a host-only secure session cookie', async function () {
    const { username, password } = await test.userWithRole('author');
    const response = await test.anonymous().post('/auth/login', { username, password });

    const cookie = String(response.headers['set-cookie']);
    assert.match(cookie, /^__Host-appliance_session=/);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /Secure/);
    assert.match(cookie, /SameSite=Strict/);
    assert.match(cookie, /Path=\//);
  });

  it('rejects a wrong password with 401 and no cookie', async function () {
    const response = await test
      .anonymous()
      .post('/auth/login', { username: 'admin', password: 'not-the-password' });

    assert.equal(response.status, 401);
    assert.match(response.body.type, /invalid_credentials$/);
    assert.equal(response.headers['set-cookie'], undefined);
  });

  it('ends the session at logout', async function () {
    const { client } = await test.userWithRole('analyst');
    assert.equal((await client.get('/auth/me')).status, 200);

    assert.equal((await client.post('/auth/logout')).status, 204);

    assert.equal((await client.get('/auth/me')).status, 401);
  });

  it('compares user names after NFKC normalisation', async function () {
    const admin = await test.admin();
    const created = await admin.post('/users', {
      username: 'ｆｒａｎｋ',
      password: 'frank-password-1',
      role: 'author',
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.username, 'frank');

    const duplicate = await admin.post('/users', {
      username: 'Frank',
      password: 'frank-password-2',
      role: 'author',
    });
    assert.equal(duplicate.status, 409);
  });

  it('names the field of a bad new user', async function () {
    const admin = await test.admin();

    const response = await admin.post('/users', {
      username: 'grace',
      password: 'short',
      role: 'root',
    });

    assert.equal(response.status, 400);
    const fields = response.body.errors.map((error: { field: string }) => error.field).sort();
    assert.deepEqual(fields, ['password', 'role']);
  });

  const access: Array<[string, string, Record<string, number>]> = [
    ['GET', '/users', { admin: 200, author: 403, analyst: 403, auditor: 403 }],
    ['GET', '/audit/verify', { admin: 200, author: 403, analyst: 403, auditor: 200 }],
  ];
  for (const [method, route, expected] of access) {
    it(`enforces roles on ${method} ${route}`, async function () {
      for (const [role, status] of Object.entries(expected)) {
        const client =
          role === 'admin'
            ? await test.admin()
            : (await test.userWithRole(role as 'author')).client;
        const response = await client.request(method, route);
        assert.equal(response.status, status, `${role} ${method} ${route}`);
      }
    });
  }
});
