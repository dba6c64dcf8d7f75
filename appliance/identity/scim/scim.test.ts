import assert from 'node:assert/strict';

import { QueryTypes } from 'sequelize';

import type { ApiResponse } from '../../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../../testing/harness';

const scimJson = 'application/scim+json';
const errorSchema = 'urn:ietf:params:scim:api:messages:2.0:Error';
const patchSchema = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

interface AuditRow {
  action: string;
  outcome: string;
  resource_id: string | null;
  reason: string | null;
}

describe('SCIM 2.0 provisioning @integration', function () {
  this.timeout(120_000);
  let test: TestAppliance;
  let key: string;

  before(async function () {
    test = await startTestAppliance({
      env: {
        SCIM_GROUP_ROLE_MAP: JSON.stringify({
          'soc-analysts': 'analyst',
          'soc-leads': 'analyst',
          'prompt-authors': 'author',
        }),
      },
    });
    key = await apiKey(['users:read', 'users:create', 'users:update', 'users:delete']);
  });

  after(async function () {
    await test?.close();
  });

  async function apiKey(permissions: string[]): Promise<string> {
    const created = await (
      await test.admin()
    ).post('/api-keys', {
      name: `scim ${permissions.length}`,
      permissions,
      expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body.key as string;
  }

  /** Sends a SCIM request the way provisioning clients do: bearer key, application/scim+json. */
  function scim(method: string, path: string, body?: unknown, bearer = key): Promise<ApiResponse> {
    return test.anonymous().request(method, `/scim/v2${path}`, body, {
      authorization: `Bearer ${bearer}`,
      accept: scimJson,
      ...(body === undefined ? {} : { 'content-type': scimJson }),
    });
  }

  async function createUser(userName: string, extra: Record<string, unknown> = {}) {
    const response = await scim('POST', '/Users', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
      userName,
      ...extra,
    });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    return response.body as { id: string; [name: string]: unknown };
  }

  function assertScimError(response: ApiResponse, status: number, scimType?: string) {
    assert.equal(response.status, status, JSON.stringify(response.body));
    assert.match(String(response.headers['content-type']), /^application\/scim\+json/);
    assert.deepEqual(response.body.schemas, [errorSchema]);
    assert.equal(response.body.status, String(status));
    assert.equal(response.body.scimType, scimType);
    assert.equal(typeof response.body.detail, 'string');
  }

  async function accountOf(userId: string) {
    const [row] = await test.appliance.database.sequelize.query<{ role: string; disabled: number }>(
      'SELECT role, disabled FROM users WHERE id = :userId',
      { type: QueryTypes.SELECT, replacements: { userId } },
    );
    return { role: row.role, disabled: Boolean(row.disabled) };
  }

  it('serves the discovery resources', async function () {
    const config = await scim('GET', '/ServiceProviderConfig');
    assert.equal(config.status, 200);
    assert.match(String(config.headers['content-type']), /^application\/scim\+json/);
    assert.equal(config.body.patch.supported, true);
    assert.equal(config.body.filter.maxResults, 200);

    const types = await scim('GET', '/ResourceTypes');
    assert.deepEqual(
      types.body.Resources.map((type: { endpoint: string }) => type.endpoint),
      ['/Users', '/Groups'],
    );
    const schemas = await scim('GET', '/Schemas');
    assert.equal(schemas.body.totalResults, 2);
  });

  it('creates a user that stays disabled without a mapped group', async function () {
    const created = await createUser('Ｅve.Example', {
      externalId: 'ext-eve',
      displayName: 'Eve Example',
      name: { givenName: 'Eve', familyName: 'Example' },
      emails: [{ value: 'eve@example.test', type: 'work', primary: true }],
      password: 'ignored-by-the-appliance',
    });

    // NFKC turns the full-width letter into a plain one; names are stored in lower case.
    assert.equal(created.userName, 'eve.example');
    assert.equal(created.active, true);
    assert.deepEqual(created.name, { givenName: 'Eve', familyName: 'Example' });
    assert.equal(
      (created.meta as { location: string }).location.endsWith(`/Users/${created.id}`),
      true,
    );
    assert.deepEqual(await accountOf(created.id), { role: 'auditor', disabled: true });

    const fetched = await scim('GET', `/Users/${created.id}`);
    assert.equal(fetched.status, 200);
    assert.equal(fetched.body.externalId, 'ext-eve');
  });

  it('rejects a taken or invalid userName', async function () {
    await createUser('taken.name');
    assertScimError(await scim('POST', '/Users', { userName: 'TAKEN.name' }), 409, 'uniqueness');
    // A local account is never taken over by SCIM.
    assertScimError(await scim('POST', '/Users', { userName: 'admin' }), 409, 'uniqueness');

    const missing = await scim('POST', '/Users', { displayName: 'no name' });
    assertScimError(missing, 400, 'invalidValue');
    assert.match(missing.body.detail, /userName/);

    for (const userName of ['star*', 'paren(s)', 'back\\slash', 'nul\u0000']) {
      const rejected = await scim('POST', '/Users', { userName });
      assertScimError(rejected, 400, 'invalidValue');
      assert.match(rejected.body.detail, /userName/);
    }
  });

  it('lists users with a filter and paging', async function () {
    for (const name of ['page.one', 'page.two', 'page.three']) await createUser(name);

    const filtered = await scim(
      'GET',
      `/Users?filter=${encodeURIComponent('userName eq "PAGE.two"')}`,
    );
    assert.equal(filtered.status, 200);
    assert.equal(filtered.body.totalResults, 1);
    assert.equal(filtered.body.Resources[0].userName, 'page.two');

    const none = await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "nobody"')}`);
    assert.equal(none.body.totalResults, 0);
    assert.deepEqual(none.body.Resources, []);

    const all = await scim('GET', '/Users');
    const second = await scim('GET', '/Users?startIndex=2&count=2');
    assert.equal(second.body.totalResults, all.body.totalResults);
    assert.equal(second.body.startIndex, 2);
    assert.equal(second.body.itemsPerPage, 2);
    assert.deepEqual(
      second.body.Resources.map((user: { id: string }) => user.id),
      all.body.Resources.slice(1, 3).map((user: { id: string }) => user.id),
    );

    // Local accounts are not SCIM resources.
    const local = await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "admin"')}`);
    assert.equal(local.body.totalResults, 0);
  });

  it('rejects an unsupported filter', async function () {
    const response = await scim('GET', `/Users?filter=${encodeURIComponent('userName sw "a"')}`);
    assertScimError(response, 400, 'invalidFilter');
    const other = await scim('GET', `/Users?filter=${encodeURIComponent('title eq "x"')}`);
    assertScimError(other, 400, 'invalidFilter');
  });

  it('maps group membership to roles', async function () {
    const user = await createUser('grace.groups');
    const group = await scim('POST', '/Groups', {
      displayName: 'soc-analysts',
      members: [{ value: user.id }],
    });
    assert.equal(group.status, 201, JSON.stringify(group.body));
    assert.deepEqual(
      group.body.members.map((member: { display: string }) => member.display),
      ['grace.groups'],
    );
    assert.deepEqual(await accountOf(user.id), { role: 'analyst', disabled: false });

    const authors = await scim('POST', '/Groups', { displayName: 'prompt-authors' });
    const added = await scim('PATCH', `/Groups/${authors.body.id}`, {
      schemas: [patchSchema],
      Operations: [{ op: 'add', path: 'members', value: [{ value: user.id }] }],
    });
    assert.equal(added.status, 200, JSON.stringify(added.body));
    // In both groups the user gets the first role in the order admin, author, analyst, auditor.
    assert.deepEqual(await accountOf(user.id), { role: 'author', disabled: false });

    const fetched = await scim('GET', `/Users/${user.id}`);
    assert.deepEqual(
      fetched.body.groups.map((entry: { display: string }) => entry.display).sort(),
      ['prompt-authors', 'soc-analysts'],
    );

    // Losing every mapped group disables the account.
    await scim('PATCH', `/Groups/${authors.body.id}`, {
      schemas: [patchSchema],
      Operations: [{ op: 'remove', path: `members[value eq "${user.id}"]` }],
    });
    assert.deepEqual(await accountOf(user.id), { role: 'analyst', disabled: false });
    await scim('PATCH', `/Groups/${group.body.id}`, {
      schemas: [patchSchema],
      Operations: [{ op: 'Remove', path: 'members', value: [{ value: user.id }] }],
    });
    assert.deepEqual(await accountOf(user.id), { role: 'analyst', disabled: true });
  });

  it('rejects members that are not SCIM users', async function () {
    const [admin] = await test.appliance.database.sequelize.query<{ id: string }>(
      "SELECT id FROM users WHERE username = 'admin'",
      { type: QueryTypes.SELECT },
    );
    const response = await scim('POST', '/Groups', {
      displayName: 'takeover',
      members: [{ value: admin.id }],
    });
    assertScimError(response, 400, 'invalidValue');
    assert.match(response.body.detail, /members/);
    assert.equal((await accountOf(admin.id)).role, 'admin');
  });

  it('deactivation ends the sessions', async function () {
    const user = await createUser('henry.sessions');
    const team = await scim('POST', '/Groups', {
      displayName: 'henry-team',
      members: [{ value: user.id }],
    });
    assert.deepEqual(await accountOf(user.id), { role: 'auditor', disabled: true });
    // Renaming the group to a mapped name gives its members that role.
    await scim('PATCH', `/Groups/${team.body.id}`, {
      schemas: [patchSchema],
      Operations: [{ op: 'replace', path: 'displayName', value: 'soc-leads' }],
    });
    assert.deepEqual(await accountOf(user.id), { role: 'analyst', disabled: false });

    const { token } = await test.appliance.database.write((transaction) =>
      test.appliance.identity.sessions.open(user.id, { sourceIp: '127.0.0.1' }, transaction),
    );
    assert.equal(await test.appliance.identity.sessions.resolve(token), user.id);

    const patched = await scim('PATCH', `/Users/${user.id}`, {
      schemas: [patchSchema],
      Operations: [{ op: 'replace', value: { active: 'False' } }],
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.active, false);
    assert.equal(await test.appliance.identity.sessions.resolve(token), undefined);
    assert.equal((await accountOf(user.id)).disabled, true);

    const audit = await lastAudit('identity.scim.user.patch');
    assert.equal(audit.outcome, 'success');
    assert.equal(audit.resource_id, user.id);
    assert.match(audit.reason ?? '', /disabled=true/);
    assert.match(audit.reason ?? '', /api_key=/);
  });

  it('patches and replaces user attributes', async function () {
    const user = await createUser('ivy.patch', { displayName: 'Ivy' });

    const patched = await scim('PATCH', `/Users/${user.id}`, {
      schemas: [patchSchema],
      Operations: [
        { op: 'replace', path: 'displayName', value: 'Ivy Patched' },
        { op: 'add', path: 'name.givenName', value: 'Ivy' },
        { op: 'add', path: 'externalId', value: 'ext-ivy' },
      ],
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.displayName, 'Ivy Patched');
    assert.deepEqual(patched.body.name, { givenName: 'Ivy' });

    const removed = await scim('PATCH', `/Users/${user.id}`, {
      schemas: [patchSchema],
      Operations: [{ op: 'remove', path: 'displayName' }],
    });
    assert.equal(removed.body.displayName, undefined);

    assertScimError(
      await scim('PATCH', `/Users/${user.id}`, {
        schemas: [patchSchema],
        Operations: [{ op: 'replace', path: 'title', value: 'x' }],
      }),
      400,
      'invalidPath',
    );
    assertScimError(
      await scim('PATCH', `/Users/${user.id}`, {
        schemas: [patchSchema],
        Operations: [{ op: 'remove', path: 'userName' }],
      }),
      400,
      'mutability',
    );

    const replaced = await scim('PUT', `/Users/${user.id}`, {
      userName: 'ivy.renamed',
      active: true,
    });
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    assert.equal(replaced.body.userName, 'ivy.renamed');
    assert.equal(replaced.body.externalId, undefined);
    assert.equal(replaced.body.displayName, undefined);
  });

  it('DELETE deactivates a user', async function () {
    const user = await createUser('jack.delete');
    const deleted = await scim('DELETE', `/Users/${user.id}`);
    assert.equal(deleted.status, 204);

    const fetched = await scim('GET', `/Users/${user.id}`);
    assert.equal(fetched.status, 200);
    assert.equal(fetched.body.active, false);
    assert.equal((await accountOf(user.id)).disabled, true);
  });

  it('replaces and deletes a group', async function () {
    const user = await createUser('kate.group');
    const group = await scim('POST', '/Groups', { displayName: 'temporary', externalId: 'ext-1' });

    const replaced = await scim('PUT', `/Groups/${group.body.id}`, {
      displayName: 'prompt-authors-team',
      members: [{ value: user.id }],
    });
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    assert.equal(replaced.body.externalId, undefined);
    assert.equal(replaced.body.members.length, 1);

    const filtered = await scim(
      'GET',
      `/Groups?filter=${encodeURIComponent('displayName eq "prompt-authors-team"')}`,
    );
    assert.equal(filtered.body.totalResults, 1);

    assert.equal((await scim('DELETE', `/Groups/${group.body.id}`)).status, 204);
    assertScimError(await scim('GET', `/Groups/${group.body.id}`), 404);
    assertScimError(
      await scim('POST', '/Groups', { displayName: 'soc-analysts' }),
      409,
      'uniqueness',
    );
  });

  it('answers unknown ids with a SCIM 404', async function () {
    assertScimError(await scim('GET', '/Users/00000000-0000-4000-8000-000000000000'), 404);
    assertScimError(
      await scim('PATCH', '/Groups/no-such-group', {
        schemas: [patchSchema],
        Operations: [{ op: 'add', path: 'members', value: [] }],
      }),
      404,
    );
  });

  it('rejects missing or insufficient keys', async function () {
    const anonymous = await test.anonymous().request('GET', '/scim/v2/Users');
    assertScimError(anonymous, 401);

    const readOnly = await apiKey(['users:read']);
    assert.equal((await scim('GET', '/Users', undefined, readOnly)).status, 200);
    assertScimError(await scim('POST', '/Users', { userName: 'nope' }, readOnly), 403);

    const denied = await lastAudit('identity.scim.user.create');
    assert.equal(denied.outcome, 'denied');
  });

  it('fails closed without audit record', async function () {
    const sequelize = test.appliance.database.sequelize;
    await sequelize.query(
      "CREATE TRIGGER audit_unavailable BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    );
    try {
      assertScimError(await scim('POST', '/Users', { userName: 'lost.audit' }), 503);
    } finally {
      await sequelize.query('DROP TRIGGER audit_unavailable');
    }

    const users = await sequelize.query("SELECT id FROM users WHERE username = 'lost.audit'", {
      type: QueryTypes.SELECT,
    });
    assert.deepEqual(users, []);
  });

  it('rejects malformed JSON as invalidSyntax', async function () {
    const response = await scim('POST', '/Users', '{"userName": ');
    assertScimError(response, 400, 'invalidSyntax');
  });

  it('leaves LDAP sign-in off without settings', async function () {
    const response = await test
      .anonymous()
      .post('/auth/ldap/login', { username: 'someone', password: 'secret' });
    assert.equal(response.status, 404);
    assert.equal(response.body.type, 'urn:prompt-bank-appliance:problem:ldap_not_configured');
  });

  async function lastAudit(action: string): Promise<AuditRow> {
    const [row] = await test.appliance.database.sequelize.query<AuditRow>(
      'SELECT action, outcome, resource_id, reason FROM audit_records WHERE action = :action ORDER BY seq DESC LIMIT 1',
      { type: QueryTypes.SELECT, replacements: { action } },
    );
    return row;
  }
});
