import assert from 'node:assert/strict';

import { QueryTypes } from 'sequelize';

import { startTestAppliance, type TestAppliance } from '../testing/harness';

interface AuditRow {
  actor_user_id: string | null;
  actor_username: string | null;
  resource_id: string | null;
  outcome: string;
  reason: string | null;
}

const unknownId = '00000000-0000-4000-8000-000000000000';
const dayMs = 24 * 60 * 60 * 1000;
const inDays = (days: number) => new Date(Date.now() + days * dayMs).toISOString();

describe('API keys @integration', function () {
  let test: TestAppliance;

  before(async function () {
    test = await startTestAppliance();
  });

  after(async function () {
    await test?.close();
  });

  /** Sends a request with only the bearer key: no cookie, no CSRF header. */
  function withKey(key: string, method: string, path: string, body?: unknown) {
    return test.anonymous().request(method, path, body, { authorization: `Bearer ${key}` });
  }

  async function auditOf(action: string): Promise<AuditRow> {
    const rows = await test.appliance.database.sequelize.query<AuditRow>(
      'SELECT * FROM audit_records WHERE action = :action ORDER BY seq DESC LIMIT 1',
      { type: QueryTypes.SELECT, replacements: { action } },
    );
    return rows[0];
  }

  it('create returns the key only once', async function () {
    const { client } = await test.userWithRole('author');
    const created = await client.post('/api-keys', {
      name: 'ci export',
      permissions: ['prompts:read'],
      expiresAt: inDays(30),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const key = created.body.key as string;
    assert.match(key, /^pba_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.body.hint, `pba_…${key.slice(-4)}`);

    const stored = await test.appliance.database.sequelize.query<Record<string, unknown>>(
      'SELECT * FROM api_keys WHERE id = :id',
      { type: QueryTypes.SELECT, replacements: { id: created.body.id } },
    );
    assert.ok(!JSON.stringify(stored).includes(key.slice(4)), 'the key is not stored');
    assert.match(String(stored[0].key_hash), /^[0-9a-f]{64}$/);

    const listed = await client.get('/api-keys');
    assert.equal(listed.status, 200);
    assert.ok(!JSON.stringify(listed.body).includes(key.slice(4)), 'the key is not listed');
    const [item] = listed.body.items;
    assert.deepEqual(
      {
        name: item.name,
        hint: item.hint,
        permissions: item.permissions,
        lastUsedAt: item.lastUsedAt,
      },
      {
        name: 'ci export',
        hint: created.body.hint,
        permissions: ['prompts:read'],
        lastUsedAt: null,
      },
    );
  });

  it('bearer key acts within its permissions', async function () {
    const { client, username } = await test.userWithRole('author');
    const created = await client.post('/api-keys', {
      name: 'reader',
      permissions: ['prompts:read', 'folders:read', 'folders:create'],
      expiresAt: inDays(7),
    });
    const key = created.body.key as string;

    assert.equal((await withKey(key, 'GET', '/prompts')).status, 200);
    // No CSRF header is needed with a key.
    const folder = await withKey(key, 'POST', '/folders', { name: 'from a script' });
    assert.equal(folder.status, 201, JSON.stringify(folder.body));

    const beyondKey = await withKey(key, 'POST', '/prompts', {});
    assert.equal(beyondKey.status, 403);
    assert.match(beyondKey.body.detail, /does not grant prompts:create/);

    const accountRoute = await withKey(key, 'GET', '/api-keys');
    assert.equal(accountRoute.status, 403);

    const audit = await auditOf('vault.folder.create');
    assert.equal(audit.actor_username, username);
    assert.equal(audit.reason, `api_key=${created.body.id}`);

    const [item] = (await client.get('/api-keys')).body.items;
    assert.equal(item.lastUsedIp, '127.0.0.1');
    assert.ok(Date.parse(item.lastUsedAt) > Date.parse(item.createdAt) - 1000);
  });

  it('never grants more than the owner role holds now', async function () {
    const admin = await test.admin();
    const { client } = await test.userWithRole('author');
    const id = (await client.get('/auth/me')).body.user.id as string;
    const key = (
      await client.post('/api-keys', {
        name: 'author key',
        permissions: ['prompts:read', 'prompts:create'],
        expiresAt: inDays(7),
      })
    ).body.key as string;

    // The owner becomes an analyst: prompts:create is gone from the key with it.
    assert.equal((await admin.patch(`/users/${id}`, { role: 'analyst' })).status, 200);
    assert.equal((await withKey(key, 'GET', '/prompts')).status, 200);
    assert.equal((await withKey(key, 'POST', '/prompts', {})).status, 403);

    // A disabled owner's key stops working.
    assert.equal((await admin.patch(`/users/${id}`, { disabled: true })).status, 200);
    assert.equal((await withKey(key, 'GET', '/prompts')).status, 401);
  });

  it('refuses permissions beyond the role, naming each', async function () {
    const { client } = await test.userWithRole('analyst');
    const response = await client.post('/api-keys', {
      name: 'too much',
      permissions: ['alerts:read', 'users:create'],
      expiresAt: inDays(7),
    });
    assert.equal(response.status, 400);
    assert.deepEqual(
      response.body.errors.map((error: { field: string }) => error.field),
      ['permissions.1'],
    );
    assert.equal((await client.get('/api-keys')).body.items.length, 0);
  });

  it('rejects bad input naming the field', async function () {
    const { client } = await test.userWithRole('admin');
    const cases: Array<[unknown, string]> = [
      [{ permissions: ['users:read'], expiresAt: inDays(1) }, 'name'],
      [{ name: 'x', permissions: [], expiresAt: inDays(1) }, 'permissions'],
      [{ name: 'x', permissions: ['users:fly'], expiresAt: inDays(1) }, 'permissions.0'],
      [
        { name: 'x', permissions: ['users:read', 'users:read'], expiresAt: inDays(1) },
        'permissions',
      ],
      [{ name: 'x', permissions: ['users:read'] }, 'expiresAt'],
      [{ name: 'x', permissions: ['users:read'], expiresAt: 'next week' }, 'expiresAt'],
      [{ name: 'x', permissions: ['users:read'], expiresAt: inDays(-1) }, 'expiresAt'],
      [{ name: 'x', permissions: ['users:read'], expiresAt: inDays(366) }, 'expiresAt'],
    ];
    for (const [body, field] of cases) {
      const response = await client.post('/api-keys', body);
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.ok(
        response.body.errors.some((error: { field: string }) => error.field === field),
        `${JSON.stringify(body)} names ${field}: ${JSON.stringify(response.body.errors)}`,
      );
    }
    assert.equal((await client.get('/api-keys')).body.items.length, 0);
  });

  it('answers 401 for malformed, unknown, expired and revoked keys', async function () {
    const { client } = await test.userWithRole('author');
    const created = await client.post('/api-keys', {
      name: 'short-lived',
      permissions: ['prompts:read'],
      expiresAt: inDays(1),
    });
    const key = created.body.key as string;
    assert.equal((await withKey(key, 'GET', '/prompts')).status, 200);

    const unknown = `pba_${'A'.repeat(43)}`;
    for (const bad of ['pba_short', 'not-a-key', unknown]) {
      const response = await withKey(bad, 'GET', '/prompts');
      assert.equal(response.status, 401, bad);
      assert.match(String(response.headers['content-type']), /application\/problem\+json/);
    }
    const notBearer = await test
      .anonymous()
      .request('GET', '/prompts', undefined, { authorization: `Basic ${key}` });
    assert.equal(notBearer.status, 401);

    // Expired: the stored expiry is moved into the past, as time would.
    await test.appliance.database.write((transaction) =>
      test.appliance.database.sequelize.query(
        'UPDATE api_keys SET expires_at = :past WHERE id = :id',
        { transaction, replacements: { id: created.body.id, past: inDays(-1) } },
      ),
    );
    assert.equal((await withKey(key, 'GET', '/prompts')).status, 401);

    const second = await client.post('/api-keys', {
      name: 'revoked soon',
      permissions: ['prompts:read'],
      expiresAt: inDays(1),
    });
    assert.equal((await client.delete(`/api-keys/${second.body.id}`)).status, 204);
    assert.equal((await withKey(second.body.key, 'GET', '/prompts')).status, 401);

    const audit = await auditOf('auth.apikey.revoke');
    assert.equal(audit.resource_id, second.body.id);
    assert.equal(audit.outcome, 'success');
  });

  it('revokes only the own keys', async function () {
    const owner = await test.userWithRole('author');
    const other = await test.userWithRole('author');
    const created = await owner.client.post('/api-keys', {
      name: 'mine',
      permissions: ['prompts:read'],
      expiresAt: inDays(1),
    });

    assert.equal((await other.client.delete(`/api-keys/${created.body.id}`)).status, 404);
    assert.equal((await withKey(created.body.key, 'GET', '/prompts')).status, 200);
    assert.equal((await owner.client.delete(`/api-keys/${unknownId}`)).status, 404);
    assert.equal((await owner.client.delete('/api-keys/nope')).status, 400);
    assert.equal((await owner.client.delete(`/api-keys/${created.body.id}`)).status, 204);
    assert.equal((await owner.client.delete(`/api-keys/${created.body.id}`)).status, 404);
  });

  it('creates no key when the audit record cannot be written', async function () {
    const { client } = await test.userWithRole('author');
    const { sequelize } = test.appliance.database;
    await sequelize.query(
      "CREATE TRIGGER audit_down BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    );
    try {
      const response = await client.post('/api-keys', {
        name: 'unaudited',
        permissions: ['prompts:read'],
        expiresAt: inDays(1),
      });
      assert.equal(response.status, 503);
      assert.equal(response.body.key, undefined);
    } finally {
      await sequelize.query('DROP TRIGGER audit_down');
    }
    assert.equal((await client.get('/api-keys')).body.items.length, 0);
  });
});
