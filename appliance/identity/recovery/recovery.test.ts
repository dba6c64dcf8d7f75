import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { QueryTypes } from 'sequelize';

import { startTestAppliance, type TestAppliance } from '../../testing/harness';
import { activateTotp, userIdOf } from '../../testing/accounts';
import { TestMailbox, tokenFromMail } from './testing/mailbox';

interface AuditRow {
  request_id: string;
  action: string;
  outcome: string;
  resource_id: string | null;
  reason: string | null;
}

async function auditRows(test: TestAppliance, actionPrefix: string): Promise<AuditRow[]> {
  return test.appliance.database.sequelize.query<AuditRow>(
    'SELECT request_id, action, outcome, resource_id, reason FROM audit_records WHERE action LIKE :prefix ORDER BY seq',
    { type: QueryTypes.SELECT, replacements: { prefix: `${actionPrefix}%` } },
  );
}

/** Polls the audit trail until a mail outcome for `userId` beyond the first `seen` ones is recorded. */
async function nextMailAudit(test: TestAppliance, userId: string, seen: number): Promise<AuditRow> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const rows = (await auditRows(test, 'auth.recovery.mail')).filter(
      (row) => row.resource_id === userId,
    );
    if (rows.length > seen) return rows[seen];
    if (Date.now() > deadline) throw new Error('no auth.recovery.mail audit record within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Creates a signed-in user of role author with `email` set by the admin. */
async function userWithEmail(test: TestAppliance, email: string) {
  const user = await test.userWithRole('author');
  const admin = await test.admin();
  const id = await userIdOf(admin, user.username);
  const patched = await admin.patch(`/users/${id}`, { email });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  return { ...user, id, email: patched.body.email as string };
}

describe('account recovery by email @integration', function () {
  this.timeout(180_000);
  const smtpUser = 'appliance-mailer';
  const smtpPassword = crypto.randomBytes(12).toString('hex');
  let mailbox: TestMailbox;
  let secretsDir: string;
  let test: TestAppliance;

  before(async function () {
    mailbox = new TestMailbox({ user: smtpUser, password: smtpPassword });
    const port = await mailbox.listen();
    secretsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'recovery-smtp-'));
    const passwordFile = path.join(secretsDir, 'smtp-password');
    fs.writeFileSync(passwordFile, `${smtpPassword}\n`, { mode: 0o600 });

    test = await startTestAppliance({
      env: {
        SMTP_HOST: '127.0.0.1',
        SMTP_PORT: String(port),
        SMTP_FROM: 'appliance@example.test',
        SMTP_USER: smtpUser,
        SMTP_PASSWORD_FILE: passwordFile,
      },
    });
  });

  after(async function () {
    await test?.close();
    await mailbox?.close();
    fs.rmSync(secretsDir, { recursive: true, force: true });
  });

  describe('user email', function () {
    it('stores the address normalised and lists it', async function () {
      const user = await userWithEmail(test, 'Ana.Lyst@Example.TEST');
      const admin = await test.admin();

      assert.equal(user.email, 'ana.lyst@example.test');
      assert.equal((await admin.get(`/users/${user.id}`)).body.email, 'ana.lyst@example.test');
      const listed = (await admin.get('/users')).body.items.find(
        (item: { id: string }) => item.id === user.id,
      );
      assert.equal(listed.email, 'ana.lyst@example.test');
    });

    it('rejects a duplicate address naming the field', async function () {
      await userWithEmail(test, 'taken@example.test');
      const response = await (
        await test.admin()
      ).post('/users', {
        username: `dup-${crypto.randomBytes(3).toString('hex')}`,
        password: 'initial-password-for-dup',
        role: 'author',
        email: 'TAKEN@example.test',
      });

      assert.equal(response.status, 409);
      assert.equal(response.body.errors[0].field, 'email');
    });

    it('rejects an invalid address naming the field', async function () {
      const response = await (
        await test.admin()
      ).post('/users', {
        username: `bad-${crypto.randomBytes(3).toString('hex')}`,
        password: 'initial-password-for-bad',
        role: 'author',
        email: 'not-an-address',
      });

      assert.equal(response.status, 400);
      assert.equal(response.body.errors[0].field, 'email');
    });

    it('creates a user with an address', async function () {
      const response = await (
        await test.admin()
      ).post('/users', {
        username: `new-${crypto.randomBytes(3).toString('hex')}`,
        password: 'initial-password-for-new',
        role: 'analyst',
        email: 'New.User@example.test',
      });

      assert.equal(response.status, 201);
      assert.equal(response.body.email, 'new.user@example.test');
    });

    it('removes an address with null', async function () {
      const user = await userWithEmail(test, 'short-lived@example.test');
      const response = await (await test.admin()).patch(`/users/${user.id}`, { email: null });

      assert.equal(response.status, 200);
      assert.equal(response.body.email, null);
      assert.equal(response.body.role, 'author');
    });

    it('lets an admin set their own address', async function () {
      const admin = await test.admin();
      const id = await userIdOf(admin, 'admin');
      const response = await admin.patch(`/users/${id}`, { email: 'admin@example.test' });

      assert.equal(response.status, 200);
      assert.equal(response.body.email, 'admin@example.test');
      assert.equal((await admin.get('/auth/me')).status, 200);
    });
  });

  describe('recovery link', function () {
    let user: Awaited<ReturnType<typeof userWithEmail>>;
    let token: string;
    const newPassword = 'recovered-passphrase-for-author';

    before(async function () {
      user = await userWithEmail(test, 'Recover.Me@example.test');
    });

    it('mails a link to the console', async function () {
      const received = mailbox.messages.length;
      const response = await test.anonymous().post('/auth/recovery', { username: user.username });
      assert.equal(response.status, 202);

      const mail = await mailbox.nextAfter(received);
      token = tokenFromMail(mail);
      assert.equal(
        mail.to && !Array.isArray(mail.to) ? mail.to.text : '',
        'recover.me@example.test',
      );
      assert.equal(mail.from?.text, 'appliance@example.test');
      assert.match(token, /^[A-Za-z0-9_-]{43}$/);
      const port = new URL(test.appliance.url).port;
      assert.ok(
        mail.text?.includes(`https://127.0.0.1:${port}/#/recover?token=${token}`),
        'the link points at the console recovery page',
      );
      assert.equal(mail.text?.includes(user.password), false);
    });

    it('stores only the token hash', async function () {
      const rows = await test.appliance.database.sequelize.query<{ token_hash: string }>(
        'SELECT token_hash FROM account_recovery_tokens WHERE user_id = :id',
        { type: QueryTypes.SELECT, replacements: { id: user.id } },
      );

      assert.equal(rows.length, 1);
      assert.equal(rows[0].token_hash, crypto.createHash('sha256').update(token).digest('hex'));
    });

    it('rejects a weak new password and keeps the token', async function () {
      const response = await test
        .anonymous()
        .post('/auth/recovery/complete', { token, newPassword: 'short' });

      assert.equal(response.status, 400);
      assert.equal(response.body.errors[0].field, 'newPassword');
    });

    it('sets the password and closes sessions', async function () {
      assert.equal((await user.client.get('/auth/me')).status, 200);

      const response = await test
        .anonymous()
        .post('/auth/recovery/complete', { token, newPassword });
      assert.equal(response.status, 204);

      assert.equal((await user.client.get('/auth/me')).status, 401);
      const old = await test
        .anonymous()
        .post('/auth/login', { username: user.username, password: user.password });
      assert.equal(old.status, 401);
      const fresh = await test
        .anonymous()
        .post('/auth/login', { username: user.username, password: newPassword });
      assert.equal(fresh.status, 200);
      assert.equal(fresh.body.user.mustChangePassword, false);
    });

    it('rejects a reused token', async function () {
      const response = await test
        .anonymous()
        .post('/auth/recovery/complete', { token, newPassword: 'another-passphrase-here' });

      assert.equal(response.status, 400);
      assert.match(response.body.type, /invalid_recovery_token$/);
      assert.equal(response.body.errors[0].field, 'token');
    });

    it('rejects a tampered token the same way', async function () {
      const tampered = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
      const reused = await test
        .anonymous()
        .post('/auth/recovery/complete', { token, newPassword: 'another-passphrase-here' });
      const response = await test.anonymous().post('/auth/recovery/complete', {
        token: tampered,
        newPassword: 'another-passphrase-here',
      });

      assert.equal(response.status, 400);
      assert.deepEqual(
        { ...response.body, instance: undefined },
        { ...reused.body, instance: undefined },
      );
    });

    it('rejects an expired token', async function () {
      const received = mailbox.messages.length;
      // By address this time, typed in another case than it was stored.
      const response = await test
        .anonymous()
        .post('/auth/recovery', { email: 'RECOVER.me@Example.test' });
      assert.equal(response.status, 202);
      const expiring = tokenFromMail(await mailbox.nextAfter(received));

      await test.appliance.database.sequelize.query(
        'UPDATE account_recovery_tokens SET expires_at = :past WHERE user_id = :id',
        { replacements: { past: new Date(Date.now() - 1000).toISOString(), id: user.id } },
      );
      const completion = await test.anonymous().post('/auth/recovery/complete', {
        token: expiring,
        newPassword: 'expired-link-passphrase',
      });

      assert.equal(completion.status, 400);
      assert.match(completion.body.type, /invalid_recovery_token$/);
      const login = await test
        .anonymous()
        .post('/auth/login', { username: user.username, password: newPassword });
      assert.equal(login.status, 200);
    });

    it('audits request, mail and completion without the token', async function () {
      const rows = (await auditRows(test, 'auth.recovery.')).filter(
        (row) => row.resource_id === user.id,
      );
      const seen = new Set(rows.map((row) => `${row.action} ${row.outcome}`));

      assert.ok(seen.has('auth.recovery.request success'));
      assert.ok(seen.has('auth.recovery.mail success'));
      assert.ok(seen.has('auth.recovery.complete success'));
      assert.equal(
        rows.some((row) => row.reason?.includes(token)),
        false,
      );
    });
  });

  describe('no enumeration', function () {
    async function noMailWithin(received: number, milliseconds: number) {
      await new Promise((resolve) => setTimeout(resolve, milliseconds));
      assert.equal(mailbox.messages.length, received, 'no mail was sent');
    }

    it('answers an unknown user like a known one', async function () {
      const known = await userWithEmail(test, 'known@example.test');
      const received = mailbox.messages.length;
      const knownResponse = await test
        .anonymous()
        .post('/auth/recovery', { username: known.username });
      await mailbox.nextAfter(received);

      const unknownReceived = mailbox.messages.length;
      const unknown = await test.anonymous().post('/auth/recovery', { username: 'nobody-here' });

      assert.equal(unknown.status, 202);
      assert.deepEqual(unknown.body, knownResponse.body);
      await noMailWithin(unknownReceived, 500);
      const [last] = (await auditRows(test, 'auth.recovery.request')).slice(-1);
      assert.equal(last.reason, 'no mail: unknown account');
    });

    it('sends nothing to a disabled user', async function () {
      const user = await userWithEmail(test, 'disabled@example.test');
      const disabled = await (await test.admin()).patch(`/users/${user.id}`, { disabled: true });
      assert.equal(disabled.status, 200);

      const received = mailbox.messages.length;
      const response = await test.anonymous().post('/auth/recovery', { username: user.username });

      assert.equal(response.status, 202);
      await noMailWithin(received, 500);
      const [last] = (await auditRows(test, 'auth.recovery.request')).slice(-1);
      assert.equal(last.reason, 'no mail: account disabled');
    });

    it('sends nothing to a user without an address', async function () {
      const user = await test.userWithRole('analyst');
      const received = mailbox.messages.length;
      const response = await test.anonymous().post('/auth/recovery', { username: user.username });

      assert.equal(response.status, 202);
      await noMailWithin(received, 500);
      const [last] = (await auditRows(test, 'auth.recovery.request')).slice(-1);
      assert.equal(last.reason, 'no mail: no email address');
    });

    it('throttles per account and replaces older links', async function () {
      const user = await userWithEmail(test, 'busy@example.test');
      const tokens: string[] = [];
      for (let attempt = 0; attempt < 3; attempt++) {
        const received = mailbox.messages.length;
        const response = await test.anonymous().post('/auth/recovery', { username: user.username });
        assert.equal(response.status, 202);
        tokens.push(tokenFromMail(await mailbox.nextAfter(received)));
      }

      const received = mailbox.messages.length;
      const throttled = await test
        .anonymous()
        .post('/auth/recovery', { email: 'busy@example.test' });
      assert.equal(throttled.status, 202);
      await noMailWithin(received, 500);
      const [last] = (await auditRows(test, 'auth.recovery.request')).slice(-1);
      assert.equal(last.reason, 'no mail: too many requests for this account');

      const older = await test
        .anonymous()
        .post('/auth/recovery/complete', { token: tokens[0], newPassword: 'busy-user-passphrase' });
      assert.equal(older.status, 400);
      const newest = await test
        .anonymous()
        .post('/auth/recovery/complete', { token: tokens[2], newPassword: 'busy-user-passphrase' });
      assert.equal(newest.status, 204);
    });

    it('rejects a body with both identifiers naming the field', async function () {
      const response = await test
        .anonymous()
        .post('/auth/recovery', { username: 'someone', email: 'someone@example.test' });

      assert.equal(response.status, 400);
      assert.equal(response.body.errors[0].field, 'username');
    });
  });

  describe('audit trail unavailable', function () {
    const trigger =
      "CREATE TRIGGER audit_unavailable BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END";

    async function withoutAudit(work: () => Promise<void>) {
      const sequelize = test.appliance.database.sequelize;
      await sequelize.query(trigger);
      try {
        await work();
      } finally {
        await sequelize.query('DROP TRIGGER audit_unavailable');
      }
    }

    it('refuses a request and sends no mail', async function () {
      const user = await userWithEmail(test, 'no-audit-request@example.test');
      const received = mailbox.messages.length;

      await withoutAudit(async () => {
        const response = await test.anonymous().post('/auth/recovery', { username: user.username });
        assert.equal(response.status, 503);
        assert.match(response.body.type, /audit_unavailable$/);
      });

      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(mailbox.messages.length, received);
      const tokens = await test.appliance.database.sequelize.query(
        'SELECT token_hash FROM account_recovery_tokens WHERE user_id = :id',
        { type: QueryTypes.SELECT, replacements: { id: user.id } },
      );
      assert.equal(tokens.length, 0);
    });

    it('refuses a completion and keeps the password and token', async function () {
      const user = await userWithEmail(test, 'no-audit-complete@example.test');
      const received = mailbox.messages.length;
      await test.anonymous().post('/auth/recovery', { username: user.username });
      const token = tokenFromMail(await mailbox.nextAfter(received));
      // The mail outcome is audited after delivery; wait for it before the trail goes away.
      await nextMailAudit(test, user.id, 0);
      const newPassword = 'no-audit-recovered-passphrase';

      await withoutAudit(async () => {
        const response = await test
          .anonymous()
          .post('/auth/recovery/complete', { token, newPassword });
        assert.equal(response.status, 503);
      });

      assert.equal((await user.client.get('/auth/me')).status, 200);
      const old = await test
        .anonymous()
        .post('/auth/login', { username: user.username, password: user.password });
      assert.equal(old.status, 200);
      const retried = await test
        .anonymous()
        .post('/auth/recovery/complete', { token, newPassword });
      assert.equal(retried.status, 204);
    });
  });

  describe('second factor after recovery', function () {
    it('still asks for the TOTP code', async function () {
      const user = await userWithEmail(test, 'with-totp@example.test');
      await activateTotp(user.client);

      const received = mailbox.messages.length;
      await test.anonymous().post('/auth/recovery', { username: user.username });
      const token = tokenFromMail(await mailbox.nextAfter(received));
      const newPassword = 'totp-user-recovered-passphrase';
      const completion = await test
        .anonymous()
        .post('/auth/recovery/complete', { token, newPassword });
      assert.equal(completion.status, 204);

      const login = await test
        .anonymous()
        .post('/auth/login', { username: user.username, password: newPassword });
      assert.equal(login.status, 200);
      assert.equal(login.body.mfaRequired, true);
      assert.equal(login.body.user, undefined);
    });
  });
});

describe('account recovery with the mail server down @integration', function () {
  this.timeout(120_000);
  let test: TestAppliance;

  before(async function () {
    // A port that was just free and now has no listener: connections are refused.
    const closed = new TestMailbox();
    const port = await closed.listen();
    await closed.close();
    test = await startTestAppliance({
      env: { SMTP_HOST: '127.0.0.1', SMTP_PORT: String(port), SMTP_FROM: 'appliance@example.test' },
    });
  });

  after(async function () {
    await test?.close();
  });

  it('answers 202 and audits the failed mail', async function () {
    const user = await userWithEmail(test, 'unreachable@example.test');
    const response = await test.anonymous().post('/auth/recovery', { username: user.username });

    assert.equal(response.status, 202);
    const audit = await nextMailAudit(test, user.id, 0);
    assert.equal(audit.outcome, 'failure');
    assert.match(audit.reason ?? '', /^smtp_failed: /);
    const [request] = (await auditRows(test, 'auth.recovery.request')).filter(
      (row) => row.resource_id === user.id,
    );
    assert.equal(request.request_id, audit.request_id);
  });
});
