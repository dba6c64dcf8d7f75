import assert from 'node:assert/strict';

import { QueryTypes } from 'sequelize';

import type { ApiClient, ApiResponse } from '../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../testing/harness';

interface AuditRow {
  actor_username: string | null;
  resource_id: string | null;
  outcome: string;
  reason: string | null;
}

const unknownId = '00000000-0000-4000-8000-000000000000';

/** Returns the `name=value` pair of the session cookie a response set. */
function sessionCookie(response: ApiResponse): string {
  const lines = (response.headers['set-cookie'] as string[] | undefined) ?? [];
  const line = lines.find((item) => item.startsWith('__Host-appliance_session='));
  assert.ok(line, 'the response sets the session cookie');
  return line.split(';')[0];
}

describe('sessions, user changes and CSRF @integration', function () {
  let test: TestAppliance;

  before(async function () {
    test = await startTestAppliance({
      env: { SESSION_LIMIT: '3', SESSION_IDLE_MINUTES: '5', SESSION_ABSOLUTE_HOURS: '2' },
    });
  });

  after(async function () {
    await test?.close();
  });

  async function signIn(username: string, password: string, userAgent?: string) {
    const client = test.anonymous();
    const response = await client.request(
      'POST',
      '/auth/login',
      { username, password },
      userAgent ? { 'user-agent': userAgent } : {},
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return { client, cookie: sessionCookie(response) };
  }

  async function lastAudit(action: string): Promise<AuditRow> {
    const rows = await test.appliance.database.sequelize.query<AuditRow>(
      'SELECT * FROM audit_records WHERE action = :action ORDER BY seq DESC LIMIT 1',
      { type: QueryTypes.SELECT, replacements: { action } },
    );
    return rows[0];
  }

  it('lists own sessions by public id', async function () {
    const { username, password } = await test.userWithRole('author');
    const first = await signIn(username, password, 'laptop-browser/1.0');
    const second = await signIn(username, password, 'phone-browser/2.0');

    const response = await second.client.get('/auth/sessions');
    assert.equal(response.status, 200);
    const items = response.body.items as Array<Record<string, unknown>>;
    assert.equal(items.filter((item) => item.current).length, 1);

    const current = items.find((item) => item.current)!;
    assert.equal(current.userAgent, 'phone-browser/2.0');
    assert.equal(current.sourceIp, '127.0.0.1');
    assert.match(String(current.id), /^[0-9a-f-]{36}$/);
    assert.ok(Date.parse(String(current.createdAt)));
    assert.ok(Date.parse(String(current.lastSeenAt)));
    assert.ok(items.some((item) => item.userAgent === 'laptop-browser/1.0' && !item.current));

    // Neither the token nor its hash is ever listed.
    const text = JSON.stringify(response.body);
    for (const { cookie } of [first, second]) assert.ok(!text.includes(cookie.split('=')[1]));
    assert.doesNotMatch(text, /[0-9a-f]{64}/);
  });

  it('revokes one of the own sessions and refuses others', async function () {
    const { username, password } = await test.userWithRole('analyst');
    const laptop = await signIn(username, password, 'laptop');
    const phone = await signIn(username, password, 'phone');

    const listed = await laptop.client.get('/auth/sessions');
    const phoneSession = (listed.body.items as Array<{ id: string; userAgent: string }>).find(
      (item) => item.userAgent === 'phone',
    )!;

    const other = await test.userWithRole('analyst');
    assert.equal((await other.client.delete(`/auth/sessions/${phoneSession.id}`)).status, 404);
    assert.equal((await phone.client.get('/auth/me')).status, 200);

    assert.equal((await laptop.client.delete(`/auth/sessions/${phoneSession.id}`)).status, 204);
    assert.equal((await phone.client.get('/auth/me')).status, 401);
    assert.equal((await laptop.client.get('/auth/me')).status, 200);

    const audit = await lastAudit('auth.session.revoke');
    assert.equal(audit.actor_username, username);
    assert.equal(audit.resource_id, phoneSession.id);

    const unknown = await laptop.client.delete(`/auth/sessions/${unknownId}`);
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.detail, /GET \/api\/v1\/auth\/sessions/);

    const malformed = await laptop.client.delete('/auth/sessions/not-an-id');
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.errors[0].field, 'params.id');
  });

  it('closes the oldest session when a login goes beyond SESSION_LIMIT', async function () {
    const { username, password } = await test.userWithRole('author');
    const sessions = [];
    for (let index = 0; index < 4; index += 1) sessions.push(await signIn(username, password));

    assert.equal((await sessions[0].client.get('/auth/me')).status, 401);
    for (const later of sessions.slice(1))
      assert.equal((await later.client.get('/auth/me')).status, 200);
    assert.equal((await sessions[3].client.get('/auth/sessions')).body.items.length, 3);
  });

  it('applies the configured idle and absolute timeouts', async function () {
    const user = await test.userWithRole('analyst');
    const sessions = test.appliance.database.sequelize;
    const [row] = await sessions.query<{ created_at: string; expires_at: string }>(
      'SELECT created_at, expires_at FROM sessions ORDER BY created_at DESC LIMIT 1',
      { type: QueryTypes.SELECT },
    );
    assert.equal(Date.parse(row.expires_at) - Date.parse(row.created_at), 2 * 3600 * 1000);

    const idleFor = async (minutes: number) => {
      const at = new Date(Date.now() - minutes * 60_000).toISOString();
      await sessions.query('UPDATE sessions SET last_seen_at = :at WHERE expires_at = :expires', {
        replacements: { at, expires: row.expires_at },
      });
      return (await user.client.get('/auth/me')).status;
    };
    assert.equal(await idleFor(4), 200, 'four idle minutes are within SESSION_IDLE_MINUTES=5');
    assert.equal(await idleFor(6), 401, 'six idle minutes end the session');
  });

  it('issues a new session at login and closes the cookie held before it', async function () {
    const { username, password } = await test.userWithRole('author');
    const before = await signIn(username, password);

    const again = await before.client.post('/auth/login', { username, password });
    assert.equal(again.status, 200);
    const after = sessionCookie(again);
    assert.notEqual(after, before.cookie);

    const replay = await test.anonymous().request('GET', '/auth/me', undefined, {
      cookie: before.cookie,
    });
    assert.equal(replay.status, 401);
    assert.equal((await before.client.get('/auth/me')).status, 200);
  });

  it('ends the other sessions at a password change', async function () {
    const { username, password } = await test.userWithRole('analyst');
    const changer = await signIn(username, password);
    const elsewhere = await signIn(username, password);

    const changed = await changer.client.post('/auth/password', {
      currentPassword: password,
      newPassword: 'a-new-password-for-sessions-1',
    });
    assert.equal(changed.status, 204);
    assert.equal((await elsewhere.client.get('/auth/me')).status, 401);
    assert.equal((await changer.client.get('/auth/me')).status, 200);
  });

  it('role change ends sessions, audits roles', async function () {
    const admin = await test.admin();
    const user = await test.userWithRole('author');
    const me = await user.client.get('/auth/me');

    const changed = await admin.patch(`/users/${me.body.user.id}`, { role: 'analyst' });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.equal(changed.body.role, 'analyst');
    assert.equal(changed.body.previousRole, 'author');
    assert.equal((await user.client.get('/auth/me')).status, 401);

    const audit = await lastAudit('identity.user.update');
    assert.equal(audit.outcome, 'success');
    assert.equal(audit.resource_id, me.body.user.id);
    assert.match(String(audit.reason), /role author->analyst/);

    const again = await signIn(user.username, user.password);
    assert.equal((await again.client.get('/auth/me')).body.user.role, 'analyst');
  });

  it('ends all sessions of a user an admin disables, and refuses their login', async function () {
    const admin = await test.admin();
    const user = await test.userWithRole('auditor');
    const id = (await user.client.get('/auth/me')).body.user.id as string;

    assert.equal((await admin.patch(`/users/${id}`, { disabled: true })).status, 200);
    assert.equal((await user.client.get('/auth/me')).status, 401);
    const login = await test
      .anonymous()
      .post('/auth/login', { username: user.username, password: user.password });
    assert.equal(login.status, 401);

    assert.equal((await admin.patch(`/users/${id}`, { disabled: false })).status, 200);
    await signIn(user.username, user.password);
  });

  it('rejects bad user changes naming the field', async function () {
    const admin = await test.admin();
    const user = await test.userWithRole('author');
    const id = (await user.client.get('/auth/me')).body.user.id as string;

    const empty = await admin.patch(`/users/${id}`, {});
    assert.equal(empty.status, 400);
    assert.match(empty.body.detail, /send at least one of role, disabled or email/);

    const badRole = await admin.patch(`/users/${id}`, { role: 'root' });
    assert.equal(badRole.status, 400);
    assert.equal(badRole.body.errors[0].field, 'role');

    const badFlag = await admin.patch(`/users/${id}`, { disabled: 'yes' });
    assert.equal(badFlag.status, 400);
    assert.equal(badFlag.body.errors[0].field, 'disabled');

    assert.equal((await admin.patch(`/users/${unknownId}`, { role: 'author' })).status, 404);

    const adminId = (await admin.get('/auth/me')).body.user.id as string;
    const self = await admin.patch(`/users/${adminId}`, { role: 'author' });
    assert.equal(self.status, 409);
    assert.equal((await admin.get('/auth/me')).body.user.role, 'admin');

    // Nothing changed for the user.
    assert.equal((await user.client.get('/auth/me')).status, 200);
  });

  it('refuses a cookie-authenticated write without the CSRF header, naming it', async function () {
    const { client } = await test.userWithRole('author');
    const withoutHeader = (request: ApiClient, method: string, path: string, body?: unknown) =>
      request.request(method, path, body, { 'x-requested-with': '' });

    const refused = await withoutHeader(client, 'POST', '/auth/logout');
    assert.equal(refused.status, 403);
    assert.match(String(refused.headers['content-type']), /application\/problem\+json/);
    assert.match(refused.body.detail, /X-Requested-With: appliance-console/);
    assert.equal((await client.get('/auth/me')).status, 200, 'the session is still open');

    const wrongValue = await client.request(
      'POST',
      '/folders',
      { name: 'csrf' },
      {
        'x-requested-with': 'XMLHttpRequest',
      },
    );
    assert.equal(wrongValue.status, 403);

    // Reads need no header.
    assert.equal((await withoutHeader(client, 'GET', '/auth/me')).status, 200);
  });

  it('role change fails closed without audit', async function () {
    const admin = await test.admin();
    const user = await test.userWithRole('author');
    const id = (await user.client.get('/auth/me')).body.user.id as string;
    const { sequelize } = test.appliance.database;
    await sequelize.query(
      "CREATE TRIGGER audit_down BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    );
    try {
      assert.equal((await admin.patch(`/users/${id}`, { role: 'analyst' })).status, 503);
    } finally {
      await sequelize.query('DROP TRIGGER audit_down');
    }
    const me = await user.client.get('/auth/me');
    assert.equal(me.status, 200);
    assert.equal(me.body.user.role, 'author');
  });
});
