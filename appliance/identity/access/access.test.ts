import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { QueryTypes } from 'sequelize';

import type { Role } from '../permissions';
import type { ApiClient } from '../../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../../testing/harness';
import { activateTotp, signInWithTotp, userIdOf } from '../../testing/accounts';

const inOneDay = () => new Date(Date.now() + 86_400_000).toISOString();

async function person(test: TestAppliance, role: Role) {
  const created = await test.userWithRole(role);
  return { ...created, id: await userIdOf(await test.admin(), created.username) };
}

function fieldsOf(body: { errors?: { field: string }[] }): string[] {
  return (body.errors ?? []).map((error) => error.field);
}

describe('access control: roles, grants, conditions, delegation @integration', function () {
  this.timeout(120_000);
  let test: TestAppliance;
  let admin: ApiClient;

  // Each test may grant this role, so it exists before any of them runs.
  before(async function () {
    test = await startTestAppliance();
    admin = await test.admin();
    const created = await admin.post('/access/roles', {
      name: 'key-watcher',
      description: 'Reads the key inventory.',
      permissions: ['keys:read'],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });

  after(async function () {
    await test?.close();
  });

  it('custom roles: inheritance and bad definitions', async function () {
    const again = await admin.post('/access/roles', { name: 'key-watcher', permissions: [] });
    assert.equal(again.status, 409, 'role names are unique');

    const child = await admin.post('/access/roles', {
      name: 'senior-author',
      permissions: ['prompts:approve'],
      inherits: ['author', 'key-watcher'],
    });
    assert.equal(child.status, 201);
    assert.ok(child.body.effectivePermissions.includes('prompts:create'));
    assert.ok(child.body.effectivePermissions.includes('keys:read'));
    assert.ok(child.body.effectivePermissions.includes('prompts:approve'));

    const cycle = await admin.request('PUT', '/access/roles/key-watcher', {
      permissions: ['keys:read'],
      inherits: ['senior-author'],
    });
    assert.equal(cycle.status, 400);
    assert.deepEqual(fieldsOf(cycle.body), ['inherits.0']);
    assert.match(cycle.body.detail, /cycle/);

    const unknown = await admin.post('/access/roles', { name: 'orphan', inherits: ['nobody'] });
    assert.equal(unknown.status, 400);
    assert.deepEqual(fieldsOf(unknown.body), ['inherits.0']);

    const builtIn = await admin.post('/access/roles', { name: 'admin', permissions: [] });
    assert.equal(builtIn.status, 400);
    assert.deepEqual(fieldsOf(builtIn.body), ['name']);

    const badPermission = await admin.post('/access/roles', {
      name: 'typo',
      permissions: ['keys:peek'],
    });
    assert.equal(badPermission.status, 400);
    assert.deepEqual(fieldsOf(badPermission.body), ['permissions.0']);

    const inUse = await admin.delete('/access/roles/key-watcher');
    assert.equal(inUse.status, 409, 'a role other roles inherit from stays');
  });

  it('time-bound grant: lapse and renewal', async function () {
    const author = await person(test, 'author');
    assert.equal((await author.client.get('/keys')).status, 403);

    // Long enough for the first read on a loaded CI machine, short enough to wait for.
    const lapsesAt = new Date(Date.now() + 5_000);
    const grant = await admin.post('/access/grants', {
      userId: author.id,
      role: 'key-watcher',
      expiresAt: lapsesAt.toISOString(),
      justification: 'quarterly key audit',
    });
    assert.equal(grant.status, 201, JSON.stringify(grant.body));
    assert.equal((await author.client.get('/keys')).status, 200);

    // Waits past the expiry however long the requests above took on a busy machine.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, lapsesAt.getTime() - Date.now()) + 500),
    );
    const lapsed = await author.client.get('/keys');
    assert.equal(lapsed.status, 403);
    assert.match(lapsed.body.detail, /keys:read/);

    // A lapsed grant is gone from the live list; a live one is renewed by someone else.
    const second = await admin.post('/access/grants', {
      userId: author.id,
      role: 'key-watcher',
      expiresAt: inOneDay(),
    });
    const later = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const renewed = await admin.post(`/access/grants/${second.body.id}/renew`, {
      expiresAt: later,
    });
    assert.equal(renewed.status, 200);
    assert.equal(renewed.body.expiresAt, later);
    assert.ok(renewed.body.renewedBy);

    const tooLong = await admin.post(`/access/grants/${second.body.id}/renew`, {
      expiresAt: new Date(Date.now() + 400 * 86_400_000).toISOString(),
    });
    assert.equal(tooLong.status, 400);
    assert.deepEqual(fieldsOf(tooLong.body), ['expiresAt']);

    assert.equal((await admin.delete(`/access/grants/${second.body.id}`)).status, 204);
    assert.equal((await author.client.get('/keys')).status, 403, 'revocation applies at once');
  });

  it("renewal of one's own grant", async function () {
    const other = await person(test, 'admin');
    const grant = await admin.post('/access/grants', {
      userId: other.id,
      role: 'key-watcher',
      expiresAt: inOneDay(),
    });
    const own = await other.client.post(`/access/grants/${grant.body.id}/renew`, {
      expiresAt: inOneDay(),
    });
    assert.equal(own.status, 403);
    assert.match(own.body.detail, /another approver/);
  });

  it('grant conditions: range, schedule, MFA', async function () {
    const author = await person(test, 'author');
    const grantWith = async (conditions: unknown) => {
      const response = await admin.post('/access/grants', {
        userId: author.id,
        role: 'key-watcher',
        conditions,
      });
      assert.equal(response.status, 201, JSON.stringify(response.body));
      return response.body.id as string;
    };
    const revoke = (id: string) => admin.delete(`/access/grants/${id}`);

    let id = await grantWith({ sourceIps: ['10.0.0.0/8'] });
    let denied = await author.client.get('/keys');
    assert.equal(denied.status, 403);
    assert.match(denied.body.detail, /only from 10\.0\.0\.0\/8/);
    await revoke(id);

    id = await grantWith({ sourceIps: ['127.0.0.0/8', '::1/128'] });
    assert.equal((await author.client.get('/keys')).status, 200);
    await revoke(id);

    // A window that is closed now: it opened and shut in the last two hours.
    const hour = new Date().getUTCHours();
    const pad = (value: number) => String((value + 24) % 24).padStart(2, '0');
    id = await grantWith({ schedule: { from: `${pad(hour - 2)}:00`, to: `${pad(hour - 1)}:00` } });
    denied = await author.client.get('/keys');
    assert.equal(denied.status, 403);
    assert.match(denied.body.detail, /applies only from/);
    await revoke(id);

    id = await grantWith({ requireMfa: true });
    denied = await author.client.get('/keys');
    assert.equal(denied.status, 403);
    assert.match(denied.body.detail, /multi-factor/);

    // The same grant applies once the session has passed TOTP from oathtool.
    const secret = await activateTotp(author.client);
    const signedIn = test.anonymous();
    await signInWithTotp(signedIn, { ...author, secret });
    assert.equal((await signedIn.get('/keys')).status, 200);
    await revoke(id);

    const malformed = await admin.post('/access/grants', {
      userId: author.id,
      role: 'key-watcher',
      conditions: { sourceIps: ['not-a-range'] },
    });
    assert.equal(malformed.status, 400);
    assert.deepEqual(fieldsOf(malformed.body), ['conditions.sourceIps.0']);
  });

  it('grant input errors name the field', async function () {
    const author = await person(test, 'author');
    const cases: [unknown, string][] = [
      [{ userId: '00000000-0000-4000-8000-000000000000', role: 'author' }, 'userId'],
      [{ userId: author.id, role: 'no-such-role' }, 'role'],
      [{ userId: author.id, role: 'break-glass' }, 'role'],
      [
        {
          userId: author.id,
          role: 'author',
          scope: { type: 'project', id: '00000000-0000-4000-8000-000000000000' },
        },
        'scope.id',
      ],
      [{ userId: author.id, role: 'author', expiresAt: '2020-01-01T00:00:00Z' }, 'expiresAt'],
    ];
    for (const [body, field] of cases) {
      const response = await admin.post('/access/grants', body);
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.deepEqual(fieldsOf(response.body), [field], JSON.stringify(response.body));
    }
  });

  it('delegation: subset, no re-delegation, cut', async function () {
    const auditor = await person(test, 'auditor');
    const author = await person(test, 'author');

    const tooMuch = await auditor.client.post('/access/delegations', {
      delegateId: author.id,
      permissions: ['keys:read', 'users:update'],
      expiresAt: inOneDay(),
    });
    assert.equal(tooMuch.status, 400);
    assert.deepEqual(fieldsOf(tooMuch.body), ['permissions.1']);

    const tooLong = await auditor.client.post('/access/delegations', {
      delegateId: author.id,
      permissions: ['keys:read'],
      expiresAt: new Date(Date.now() + 40 * 86_400_000).toISOString(),
    });
    assert.equal(tooLong.status, 400);
    assert.deepEqual(fieldsOf(tooLong.body), ['expiresAt']);

    const delegated = await auditor.client.post('/access/delegations', {
      delegateId: author.id,
      permissions: ['keys:read'],
      expiresAt: inOneDay(),
      justification: 'covering the key audit while I am away',
    });
    assert.equal(delegated.status, 201, JSON.stringify(delegated.body));
    assert.equal((await author.client.get('/keys')).status, 200);

    const mine = await author.client.get('/access/me');
    assert.ok(mine.body.permissions.includes('keys:read'));
    assert.ok(mine.body.grants.some((grant: { source: string }) => grant.source === 'delegation'));

    // The delegate cannot pass it on: delegations draw only on one's own grants.
    const third = await person(test, 'author');
    const passOn = await author.client.post('/access/delegations', {
      delegateId: third.id,
      permissions: ['keys:read'],
      expiresAt: inOneDay(),
    });
    assert.equal(passOn.status, 400);
    assert.match(passOn.body.errors[0].message, /delegated permissions cannot be passed on/);

    const demoted = await admin.patch(`/users/${auditor.id}`, { role: 'author' });
    assert.equal(demoted.status, 200);
    assert.equal(
      (await author.client.get('/keys')).status,
      403,
      'a delegation is cut to what the delegator holds now',
    );
  });
});

describe('access control: break-glass and access reviews @integration', function () {
  this.timeout(120_000);
  let test: TestAppliance;
  let admin: ApiClient;

  before(async function () {
    test = await startTestAppliance();
    admin = await test.admin();
  });

  after(async function () {
    await test?.close();
  });

  it('break-glass: open, alert, end, review', async function () {
    const analyst = await person(test, 'analyst');
    const author = await person(test, 'author');
    assert.equal((await analyst.client.get('/keys')).status, 403);

    const short = await analyst.client.post('/access/break-glass', { justification: 'need it' });
    assert.equal(short.status, 400);
    assert.deepEqual(fieldsOf(short.body), ['justification']);

    const ineligible = await author.client.post('/access/break-glass', {
      justification: 'production incident INC-42 needs key inventory access now',
    });
    assert.equal(ineligible.status, 403);

    const opened = await analyst.client.post('/access/break-glass', {
      justification: 'production incident INC-42 needs key inventory access now',
      durationMinutes: 15,
    });
    assert.equal(opened.status, 201, JSON.stringify(opened.body));
    assert.equal(opened.body.active, true);
    assert.equal((await analyst.client.get('/keys')).status, 200);

    const [alert] = await test.appliance.database.sequelize.query<{
      severity: string;
      entity_value: string;
    }>('SELECT severity, entity_value FROM alerts WHERE id = :id', {
      type: QueryTypes.SELECT,
      replacements: { id: opened.body.alertId },
    });
    assert.deepEqual(alert, { severity: 'high', entity_value: analyst.username });

    const again = await analyst.client.post('/access/break-glass', {
      justification: 'production incident INC-42 needs key inventory access now',
    });
    assert.equal(again.status, 409);

    const early = await admin.post(`/access/break-glass/${opened.body.id}/review`, {
      outcome: 'justified',
      comment: 'ok',
    });
    assert.equal(early.status, 409, 'reviewed only after it ends');

    const ended = await analyst.client.post(`/access/break-glass/${opened.body.id}/end`);
    assert.equal(ended.status, 200);
    assert.equal(ended.body.active, false);
    assert.equal((await analyst.client.get('/keys')).status, 403);

    const reviewed = await admin.post(`/access/break-glass/${opened.body.id}/review`, {
      outcome: 'justified',
      comment: 'INC-42 confirmed by the on-call lead',
    });
    assert.equal(reviewed.status, 200);
    assert.equal(reviewed.body.review.outcome, 'justified');

    const actions = await test.appliance.database.sequelize.query<{ action: string }>(
      "SELECT action FROM audit_records WHERE action LIKE 'access.break_glass.%' AND outcome = 'success' ORDER BY seq",
      { type: QueryTypes.SELECT },
    );
    assert.deepEqual(
      actions.map((row) => row.action),
      ['access.break_glass.open', 'access.break_glass.end', 'access.break_glass.review'],
    );
  });

  it('break-glass: new session token', async function () {
    const analyst = await person(test, 'analyst');
    const before = (analyst.client as unknown as { cookie?: string }).cookie;
    const opened = await analyst.client.post('/access/break-glass', {
      justification: 'checking the session rotation on privilege change',
    });
    assert.equal(opened.status, 201);
    const after = (analyst.client as unknown as { cookie?: string }).cookie;
    assert.notEqual(after, before);

    const stale = test.anonymous();
    (stale as unknown as { cookie?: string }).cookie = before;
    assert.equal((await stale.get('/auth/me')).status, 401);
    await analyst.client.post(`/access/break-glass/${opened.body.id}/end`);
  });

  it('access review: decide, expire, signed report', async function () {
    const keeper = await person(test, 'author');
    const leaver = await person(test, 'author');
    const silent = await person(test, 'analyst');
    await admin.post('/access/roles', { name: 'key-watcher', permissions: ['keys:read'] });
    const grant = await admin.post('/access/grants', { userId: keeper.id, role: 'key-watcher' });
    assert.equal((await keeper.client.get('/keys')).status, 200);

    const opened = await admin.post('/access/reviews', {
      name: 'Q4 access review',
      dueAt: new Date(Date.now() + 14 * 86_400_000).toISOString(),
    });
    assert.equal(opened.status, 201, JSON.stringify(opened.body));
    const items = opened.body.items as {
      id: string;
      userId: string;
      kind: string;
      grantId: string | null;
    }[];
    const itemOf = (id: string, kind: string) =>
      items.find((item) => item.userId === id && item.kind === kind)!;

    const decide = (itemId: string, decision: string) =>
      admin.post(`/access/reviews/${opened.body.campaign.id}/items/${itemId}`, { decision });
    assert.equal((await decide(itemOf(keeper.id, 'base-role').id, 'keep')).status, 200);
    assert.equal((await decide(itemOf(keeper.id, 'grant').id, 'revoke')).status, 200);
    assert.equal((await keeper.client.get('/keys')).status, 403, 'a revoke applies at once');
    assert.equal((await decide(itemOf(leaver.id, 'base-role').id, 'keep')).status, 200);
    assert.equal((await decide(itemOf(leaver.id, 'base-role').id, 'revoke')).status, 409);

    const adminId = await userIdOf(admin, 'admin');
    assert.equal(
      (await decide(itemOf(adminId, 'base-role').id, 'keep')).status,
      403,
      'nobody reviews themself',
    );
    assert.ok(grant.body.id);

    const closed = await admin.post(`/access/reviews/${opened.body.campaign.id}/close`);
    assert.equal(closed.status, 200);
    assert.ok(closed.body.campaign.progress.expired >= 1);
    const silentSignIn = await test
      .anonymous()
      .post('/auth/login', { username: silent.username, password: silent.password });
    assert.equal(
      silentSignIn.status,
      401,
      'an unreviewed account is disabled when the review closes',
    );
    const keptSignIn = await test
      .anonymous()
      .post('/auth/login', { username: keeper.username, password: keeper.password });
    assert.equal(keptSignIn.status, 200, JSON.stringify(keptSignIn.body));

    const report = await admin.get(`/access/reviews/${opened.body.campaign.id}/report`);
    assert.equal(report.status, 200);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'review-report-'));
    try {
      fs.writeFileSync(path.join(dir, 'report.json'), report.body.document);
      fs.writeFileSync(path.join(dir, 'report.sig'), Buffer.from(report.body.signature, 'base64'));
      fs.writeFileSync(path.join(dir, 'public.pem'), report.body.publicKeyPem);
      const verified = execFileSync(
        'openssl',
        ['dgst', '-sha256', '-verify', 'public.pem', '-signature', 'report.sig', 'report.json'],
        { cwd: dir, encoding: 'utf8' },
      );
      assert.match(verified, /Verified OK/);

      fs.writeFileSync(path.join(dir, 'report.json'), report.body.document.replace('keep', 'kept'));
      assert.throws(() =>
        execFileSync(
          'openssl',
          ['dgst', '-sha256', '-verify', 'public.pem', '-signature', 'report.sig', 'report.json'],
          {
            cwd: dir,
            stdio: 'pipe',
          },
        ),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }

    const badDue = await admin.post('/access/reviews', {
      name: 'past',
      dueAt: '2020-01-01T00:00:00Z',
    });
    assert.equal(badDue.status, 400);
    assert.deepEqual(fieldsOf(badDue.body), ['dueAt']);
  });
});

describe('access control: second approver for access changes @integration', function () {
  this.timeout(120_000);
  let test: TestAppliance;
  let admin: ApiClient;

  before(async function () {
    test = await startTestAppliance({ env: { ACCESS_CHANGE_APPROVAL: 'on' } });
    admin = await test.admin();
  });

  after(async function () {
    await test?.close();
  });

  it('change requests: approve and reject', async function () {
    const second = await person(test, 'admin');

    const asked = await admin.post('/access/roles', {
      name: 'key-watcher',
      permissions: ['keys:read'],
    });
    assert.equal(asked.status, 202, JSON.stringify(asked.body));
    const request = asked.body.changeRequest;
    assert.equal(request.status, 'pending');
    assert.equal(
      (await admin.get('/access/roles/key-watcher')).status,
      404,
      'nothing changes before approval',
    );

    const selfApproved = await admin.post(`/access/change-requests/${request.id}/approve`, {});
    assert.equal(selfApproved.status, 403);

    const approved = await second.client.post(`/access/change-requests/${request.id}/approve`, {
      comment: 'ok',
    });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.status, 'approved');
    assert.equal((await admin.get('/access/roles/key-watcher')).status, 200);

    const twice = await second.client.post(`/access/change-requests/${request.id}/approve`, {});
    assert.equal(twice.status, 409);

    const author = await person(test, 'author');
    const grantAsk = await admin.post('/access/grants', { userId: author.id, role: 'key-watcher' });
    assert.equal(grantAsk.status, 202);
    const rejected = await second.client.post(
      `/access/change-requests/${grantAsk.body.changeRequest.id}/reject`,
      {
        comment: 'not needed',
      },
    );
    assert.equal(rejected.body.status, 'rejected');
    assert.equal((await author.client.get('/keys')).status, 403);

    const newAdmin = await admin.post('/users', {
      username: 'second-opinion',
      password: 'a-long-initial-password-1',
      role: 'admin',
    });
    assert.equal(newAdmin.status, 400, 'one admin cannot mint another alone');
    assert.deepEqual(fieldsOf(newAdmin.body), ['role']);

    const invalid = await admin.post('/access/grants', { userId: author.id, role: 'nobody' });
    assert.equal(invalid.status, 400, 'a change is checked when it is asked for');

    const promotion = await admin.patch(`/users/${author.id}`, { role: 'admin' });
    assert.equal(promotion.status, 202, JSON.stringify(promotion.body));
    assert.equal((await admin.get(`/users/${author.id}`)).body.role, 'author');
    const mixed = await admin.patch(`/users/${author.id}`, { role: 'admin', disabled: false });
    assert.equal(mixed.status, 400);
    assert.deepEqual(fieldsOf(mixed.body), ['role']);

    const promoted = await second.client.post(
      `/access/change-requests/${promotion.body.changeRequest.id}/approve`,
      {},
    );
    assert.equal(promoted.status, 200);
    assert.equal((await admin.get(`/users/${author.id}`)).body.role, 'admin');
    assert.equal(
      (await author.client.get('/auth/me')).status,
      401,
      'a role change ends the sessions',
    );

    const note = await test.appliance.database.sequelize.query<{ reason: string }>(
      "SELECT reason FROM audit_records WHERE action = 'access.change.approve' ORDER BY seq DESC LIMIT 1",
      { type: QueryTypes.SELECT },
    );
    assert.match(note[0].reason, /role before=author after=admin/);
  });
});
