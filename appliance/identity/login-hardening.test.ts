import assert from 'node:assert/strict';

import { QueryTypes } from 'sequelize';

import { startTestAppliance, type TestAppliance } from '../testing/harness';
import { isCommonPassword } from './password-policy';

interface AuditRow {
  action: string;
  outcome: string;
  reason: string | null;
  actor_username: string | null;
}

async function lastLoginAudit(test: TestAppliance): Promise<AuditRow> {
  const rows = await test.appliance.database.sequelize.query<AuditRow>(
    "SELECT * FROM audit_records WHERE action = 'auth.login' ORDER BY seq DESC LIMIT 1",
    { type: QueryTypes.SELECT },
  );
  return rows[0];
}

describe('password policy', function () {
  it('matches common passwords ignoring case and NFKC forms', function () {
    assert.equal(isCommonPassword('password'), true);
    assert.equal(isCommonPassword('PassWord'), true);
    // Fullwidth letters fold to ASCII under NFKC.
    assert.equal(isCommonPassword('ｐａｓｓｗｏｒｄ'), true);
    assert.equal(isCommonPassword('correct horse battery staple 42'), false);
  });
});

/**
 * Starts one appliance for a describe block. Each block of this file gets its own,
 * because every request comes from 127.0.0.1 and so shares one source-address count.
 */
function useAppliance(): () => TestAppliance {
  let test: TestAppliance;
  before(async function () {
    test = await startTestAppliance();
  });
  after(async function () {
    await test?.close();
  });
  return () => test;
}

describe('login password policy @integration', function () {
  this.timeout(120_000);
  const appliance = useAppliance();

  it('rejects a common new password naming the field', async function () {
    const { client, password } = await appliance().userWithRole('author');

    const response = await client.post('/auth/password', {
      currentPassword: password,
      newPassword: '1QAZ2WSX3EDC',
    });

    assert.equal(response.status, 400);
    assert.equal(response.body.errors[0].field, 'newPassword');
    assert.match(response.body.errors[0].message, /commonly used password/);
  });

  it('rejects a common password for a new user', async function () {
    const admin = await appliance().admin();

    const response = await admin.post('/users', {
      username: 'common-password-user',
      password: 'qwerty123456',
      role: 'author',
    });

    assert.equal(response.status, 400);
    assert.equal(response.body.errors[0].field, 'password');
  });

  it('rejects a short new password naming the field', async function () {
    const { client, password } = await appliance().userWithRole('author');

    const response = await client.post('/auth/password', {
      currentPassword: password,
      newPassword: 'short-1',
    });

    assert.equal(response.status, 400);
    assert.equal(response.body.errors[0].field, 'newPassword');
    assert.match(response.body.errors[0].message, /at least 12 characters/);
  });
});

describe('login account lockout @integration', function () {
  this.timeout(120_000);
  const appliance = useAppliance();

  it('resets the failure count after a success', async function () {
    const { username, password } = await appliance().userWithRole('analyst');
    const client = appliance().anonymous();

    for (let attempt = 1; attempt <= 4; attempt++) {
      await client.post('/auth/login', { username, password: 'wrong-password-x' });
    }
    assert.equal((await client.post('/auth/login', { username, password })).status, 200);

    for (let attempt = 1; attempt <= 4; attempt++) {
      await client.post('/auth/login', { username, password: 'wrong-password-x' });
    }
    assert.equal((await client.post('/auth/login', { username, password })).status, 200);
  });

  it('locks an account after five failures', async function () {
    const { username, password } = await appliance().userWithRole('analyst');
    const client = appliance().anonymous();

    for (let attempt = 1; attempt <= 5; attempt++) {
      const failed = await client.post('/auth/login', { username, password: 'wrong-password-x' });
      assert.equal(failed.status, 401, `attempt ${attempt}`);
    }

    const locked = await client.post('/auth/login', { username, password });
    assert.equal(locked.status, 429);
    assert.match(locked.body.type, /account_locked$/);
    assert.ok(Number(locked.headers['retry-after']) > 0);
    assert.ok(Number(locked.headers['retry-after']) <= 15 * 60);
    assert.equal(locked.headers['set-cookie'], undefined);

    const audit = await lastLoginAudit(appliance());
    assert.equal(audit.outcome, 'denied');
    assert.equal(audit.reason, 'account_locked');
  });
});

describe('login lockout of unknown names @integration', function () {
  this.timeout(120_000);
  const appliance = useAppliance();

  it('locks an unknown username the same way', async function () {
    const client = appliance().anonymous();
    const known = await appliance().userWithRole('analyst');
    const responses = [];

    for (const username of [known.username, 'no-such-user-here']) {
      for (let attempt = 1; attempt <= 5; attempt++) {
        await client.post('/auth/login', { username, password: 'wrong-password-x' });
      }
      responses.push(await client.post('/auth/login', { username, password: 'wrong-password-x' }));
    }

    assert.equal(responses[0].status, responses[1].status);
    assert.equal(responses[0].body.type, responses[1].body.type);
    assert.equal(responses[0].body.detail, responses[1].body.detail);
    assert.match(responses[1].body.type, /account_locked$/);
  });
});

describe('login source address throttle @integration', function () {
  this.timeout(120_000);
  const appliance = useAppliance();

  it('throttles a source address after twenty failures', async function () {
    const { username, password } = await appliance().userWithRole('analyst');
    const client = appliance().anonymous();

    // Spread over names so that no single account reaches its own lock first.
    for (let attempt = 0; attempt < 20; attempt++) {
      const failed = await client.post('/auth/login', {
        username: `spray-${attempt % 5}`,
        password: 'wrong-password-x',
      });
      assert.notEqual(failed.status, 200);
    }

    const throttled = await client.post('/auth/login', { username, password });
    assert.equal(throttled.status, 429);
    assert.match(throttled.body.type, /rate_limited$/);
    assert.equal(throttled.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.ok(Number(throttled.headers['retry-after']) > 0);

    const audit = await lastLoginAudit(appliance());
    assert.equal(audit.outcome, 'denied');
    assert.equal(audit.reason, 'rate_limited');
  });
});
