import assert from 'node:assert/strict';

import { QueryTypes } from 'sequelize';

import type { ApiClient } from '../../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../../testing/harness';
import { activateTotp, oathtoolCode, userIdOf } from '../../testing/accounts';

describe('second-factor reset @integration', function () {
  this.timeout(180_000);
  let test: TestAppliance;

  before(async function () {
    test = await startTestAppliance();
  });

  after(async function () {
    await test?.close();
  });

  describe('admin reset', function () {
    it('removes all factors and closes sessions', async function () {
      const user = await test.userWithRole('author');
      await activateTotp(user.client);
      const admin = await test.admin();
      const id = await userIdOf(admin, user.username);

      const response = await admin.delete(`/users/${id}/mfa`);

      assert.equal(response.status, 200);
      assert.deepEqual(response.body.removed, {
        totp: 1,
        recoveryCodes: 10,
        webAuthnCredentials: 0,
      });
      assert.equal((await user.client.get('/auth/me')).status, 401);
      const login = await test
        .anonymous()
        .post('/auth/login', { username: user.username, password: user.password });
      assert.equal(login.status, 200);
      assert.equal(login.body.mfaRequired, undefined);
      assert.equal(login.body.user.username, user.username);
    });

    it('audits the factor counts', async function () {
      const rows = await test.appliance.database.sequelize.query<{
        outcome: string;
        reason: string;
      }>(
        "SELECT outcome, reason FROM audit_records WHERE action = 'identity.user.mfa.reset' ORDER BY seq",
        { type: QueryTypes.SELECT },
      );

      assert.equal(rows[0].outcome, 'success');
      assert.equal(
        rows[0].reason,
        'totp 1->0; recovery_codes 10->0; webauthn 0->0; sessions closed',
      );
    });

    it('lets the user enrol again', async function () {
      const user = await test.userWithRole('analyst');
      await activateTotp(user.client);
      const admin = await test.admin();
      assert.equal(
        (await admin.delete(`/users/${await userIdOf(admin, user.username)}/mfa`)).status,
        200,
      );

      const client = test.anonymous();
      await client.post('/auth/login', { username: user.username, password: user.password });
      const secret = await activateTotp(client);
      assert.match(secret, /^[A-Z2-7]{16,}$/);
    });

    it('fails closed without audit record', async function () {
      const user = await test.userWithRole('author');
      await activateTotp(user.client);
      const admin = await test.admin();
      const id = await userIdOf(admin, user.username);
      const sequelize = test.appliance.database.sequelize;

      await sequelize.query(
        "CREATE TRIGGER audit_unavailable BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
      );
      try {
        const response = await admin.delete(`/users/${id}/mfa`);
        assert.equal(response.status, 503);
      } finally {
        await sequelize.query('DROP TRIGGER audit_unavailable');
      }

      assert.equal((await user.client.get('/auth/me')).body.mfa.totp, true);
      const codes = await sequelize.query(
        'SELECT code_hash FROM user_recovery_codes WHERE user_id = :id',
        { type: QueryTypes.SELECT, replacements: { id } },
      );
      assert.equal(codes.length, 10);
    });

    it('rejects a reset of the admin themselves', async function () {
      const admin = await test.admin();
      const response = await admin.delete(`/users/${await userIdOf(admin, 'admin')}/mfa`);

      assert.equal(response.status, 409);
      assert.match(response.body.detail, /DELETE \/api\/v1\/auth\/mfa\/totp/);
    });

    it('answers 404 for an unknown user', async function () {
      const response = await (
        await test.admin()
      ).delete('/users/00000000-0000-4000-8000-000000000000/mfa');

      assert.equal(response.status, 404);
    });

    it('rejects a non-admin', async function () {
      const author = await test.userWithRole('author');
      const admin = await test.admin();
      const response = await author.client.delete(`/users/${await userIdOf(admin, 'admin')}/mfa`);

      assert.equal(response.status, 403);
    });
  });

  describe('own TOTP', function () {
    let user: { client: ApiClient; username: string; password: string };
    let secret: string;

    before(async function () {
      user = await test.userWithRole('author');
      secret = await activateTotp(user.client);
    });

    it('rejects a missing code naming the field', async function () {
      const response = await user.client.request('DELETE', '/auth/mfa/totp', {});

      assert.equal(response.status, 400);
      assert.equal(response.body.errors[0].field, 'code');
    });

    it('rejects a wrong code and keeps TOTP', async function () {
      // The confirmation used the current step, so the next step's code is the only valid one.
      const valid = oathtoolCode(secret, 30);
      const wrong = valid === '000000' ? '111111' : '000000';
      const response = await user.client.request('DELETE', '/auth/mfa/totp', { code: wrong });

      assert.equal(response.status, 400);
      assert.equal(response.body.errors[0].field, 'code');
      assert.equal((await user.client.get('/auth/me')).body.mfa.totp, true);
    });

    it('turns TOTP off with a current code', async function () {
      const response = await user.client.request('DELETE', '/auth/mfa/totp', {
        code: oathtoolCode(secret, 30),
      });

      assert.equal(response.status, 204);
      assert.equal((await user.client.get('/auth/me')).body.mfa.totp, false);
      const login = await test
        .anonymous()
        .post('/auth/login', { username: user.username, password: user.password });
      assert.equal(login.body.mfaRequired, undefined);
      const codes = await test.appliance.database.sequelize.query(
        'SELECT code_hash FROM user_recovery_codes WHERE user_id = (SELECT id FROM users WHERE username = :username)',
        { type: QueryTypes.SELECT, replacements: { username: user.username } },
      );
      assert.equal(codes.length, 0);
    });

    it('answers 409 when TOTP is not active', async function () {
      const response = await user.client.request('DELETE', '/auth/mfa/totp', { code: '123456' });

      assert.equal(response.status, 409);
    });
  });

  describe('email recovery off', function () {
    it('answers 404 naming the settings', async function () {
      const request = await test.anonymous().post('/auth/recovery', { username: 'admin' });
      const completion = await test
        .anonymous()
        .post('/auth/recovery/complete', { token: 'x', newPassword: 'a-long-enough-passphrase' });

      assert.equal(request.status, 404);
      assert.match(request.body.type, /recovery_not_configured$/);
      assert.match(request.body.detail, /SMTP_HOST/);
      assert.equal(completion.status, 404);
    });
  });
});
