import assert from 'node:assert/strict';

import { QueryTypes } from 'sequelize';

import { startTestAppliance, type TestAppliance } from '../testing/harness';

interface AuditRow {
  seq: number;
  request_id: string;
  actor_username: string | null;
  action: string;
  resource_type: string;
  resource_id: string | null;
  outcome: string;
  source_ip: string;
  reason: string | null;
}

describe('audit trail @integration', function () {
  let test: TestAppliance;

  beforeEach(async function () {
    test = await startTestAppliance();
  });

  afterEach(async function () {
    await test?.close();
  });

  async function rows(): Promise<AuditRow[]> {
    return test.appliance.database.sequelize.query<AuditRow>(
      'SELECT * FROM audit_records ORDER BY seq',
      { type: QueryTypes.SELECT },
    );
  }

  it('records who, what, resource, outcome, source and request id', async function () {
    const admin = await test.admin();
    const created = await admin.post('/users', {
      username: 'carol',
      password: 'carol-password-1',
      role: 'analyst',
    });
    const denied = await test.anonymous().get('/users');

    const records = await rows();
    const create = records.find((row) => row.action === 'identity.user.create');
    assert.ok(create);
    assert.equal(create.actor_username, 'admin');
    assert.equal(create.resource_type, 'user');
    assert.equal(create.resource_id, created.body.id);
    assert.equal(create.outcome, 'success');
    assert.equal(create.source_ip, '127.0.0.1');
    assert.equal(create.request_id, created.headers['x-request-id']);

    const refused = records.find((row) => row.request_id === denied.headers['x-request-id']);
    assert.equal(refused?.outcome, 'denied');
    assert.equal(refused?.reason, 'unauthenticated');
  });

  it('keeps passwords and field values out of the record', async function () {
    const admin = await test.admin();
    await admin.post('/users', { username: 'dave', password: 'x', role: 'analyst' });

    const dump = JSON.stringify(await rows());
    assert.doesNotMatch(dump, /admin-test-password-1/);
    assert.match(dump, /invalid_request: password/);
  });

  it('verifies over the API and names a deleted row', async function () {
    const admin = await test.admin();
    for (let i = 0; i < 3; i++) await admin.get('/users');
    assert.equal((await admin.get('/audit/verify')).body.ok, true);

    await test.appliance.database.sequelize.query('DELETE FROM audit_records WHERE seq = 4');

    const result = await admin.get('/audit/verify');
    assert.equal(result.status, 200);
    assert.equal(result.body.ok, false);
    assert.equal(result.body.firstBroken.seq, 5);
  });

  it('detects records cut from the end', async function () {
    const admin = await test.admin();
    await admin.get('/users');
    const head = (await rows()).at(-1)!.seq;

    await test.appliance.database.sequelize.query('DELETE FROM audit_records WHERE seq >= :from', {
      replacements: { from: head - 1 },
    });

    const result = await test.appliance.audit.verify();
    assert.equal(result.ok, false);
    assert.match(result.firstBroken!.reason, /removed from the end/);
  });

  it('refuses a change with 503 when the record cannot be written', async function () {
    const admin = await test.admin();
    const sequelize = test.appliance.database.sequelize;
    await sequelize.query(
      "CREATE TRIGGER audit_unavailable BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    );

    const response = await admin.post('/users', {
      username: 'erin',
      password: 'erin-password-12',
      role: 'author',
    });

    assert.equal(response.status, 503);
    assert.equal(response.body.type.endsWith('audit_unavailable'), true);
    await sequelize.query('DROP TRIGGER audit_unavailable');
    const users = await admin.get('/users');
    assert.equal(
      users.body.items.some((user: { username: string }) => user.username === 'erin'),
      false,
    );
  });

  it('refuses a read with 503 when the HSM audit key is gone', async function () {
    const admin = await test.admin();
    test.appliance.keys.close();

    const response = await admin.get('/users');

    assert.equal(response.status, 503);
    assert.equal(response.body.status, 503);
  });
});
