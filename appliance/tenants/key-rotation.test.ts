import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyInventoryItem } from '../keys/inventory';
import type { ApiClient } from '../testing/api-client';
import { runAppliancectl } from '../testing/appliancectl';
import { sharedTokenEnv, startTestAppliance, type TestAppliance } from '../testing/harness';
import { openTenants } from './index';
import { createCustomerProject, tenantItems, waitForRotation } from './test-support';

interface TenantDataKeyRow {
  prompt_id: string;
  tenant_key_version: number;
  tenant_key_uri: string;
}

async function tenantDataKeys(test: TestAppliance, projectId: string) {
  return test.appliance.database.sequelize.query<TenantDataKeyRow>(
    `SELECT prompt_id, tenant_key_version, tenant_key_uri FROM project_data_keys
     WHERE project_id = :projectId ORDER BY prompt_id`,
    { type: QueryTypes.SELECT, replacements: { projectId } },
  );
}

/**
 * Opens a second tenant domain on the running appliance's database and
 * rotates the key of `projectId` with it, without starting the rewrap, so
 * the test drives the rewrap batch by batch. The caller stops and closes
 * the domain.
 */
async function rotateInSecondDomain(test: TestAppliance, projectId: string) {
  const running = test.appliance;
  const tenants = await openTenants(running.config, running.database, running.keys, undefined, {
    resume: false,
  });
  const commit = <T>(work: (transaction: Transaction) => Promise<T>) =>
    running.database.write(work);
  try {
    const record = await tenants.rotation.rotate(
      projectId,
      { trigger: 'cli', actor: 'cli:test' },
      commit,
    );
    return { tenants, record };
  } catch (error) {
    tenants.close();
    throw error;
  }
}

describe('tenant key rotation @integration', function () {
  this.timeout(60_000);

  let test: TestAppliance;
  let admin: ApiClient;

  before(async () => {
    test = await startTestAppliance();
    admin = await test.admin();
  });

  after(async () => {
    await test?.close();
  });

  it('prompts carry their projectId', async () => {
    const project = await admin.post('/projects', { name: 'plain', keyMode: 'appliance' });
    assert.equal(project.status, 201, JSON.stringify(project.body));

    const inProject = await admin.post('/prompts', {
      title: 'In a project',
      body: 'x',
      projectId: project.body.id,
    });
    assert.equal(inProject.status, 201, JSON.stringify(inProject.body));
    assert.equal(inProject.body.projectId, project.body.id);
    assert.equal(
      (await admin.get(`/prompts/${inProject.body.id}`)).body.projectId,
      project.body.id,
    );

    const outside = await admin.post('/prompts', { title: 'Outside', body: 'y' });
    assert.equal(outside.body.projectId, null);
    const listed = (await admin.get('/prompts')).body.items as { id: string; projectId: string }[];
    assert.equal(listed.find((item) => item.id === inProject.body.id)?.projectId, project.body.id);

    const unknown = await admin.post('/prompts', {
      title: 'Unknown',
      body: 'z',
      projectId: crypto.randomUUID(),
    });
    assert.equal(unknown.status, 400, JSON.stringify(unknown.body));
    assert.equal(unknown.body.errors[0].field, 'projectId');
    const malformed = await admin.post('/prompts', { title: 'Bad', body: 'z', projectId: 'p1' });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.errors[0].field, 'projectId');
  });

  it('API rotation rewraps project data keys', async () => {
    const project = await createCustomerProject(test, admin, 'rotate via API');
    const promptIds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const created = await admin.post('/prompts', {
        title: `Tenant ${i}`,
        body: `tenant body ${i}`,
        projectId: project.id,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.projectId, project.id);
      promptIds.push(created.body.id);
    }

    const before = await tenantItems(admin, project.id);
    assert.equal(before.length, 1);
    assert.equal(before[0].keyVersion, 1);
    assert.equal(before[0].state, 'active');
    assert.equal(before[0].location, project.keyUri);
    assert.equal(before[0].dependents.count, 3);
    assert.equal(before[0].lastRotated, null);
    assert.equal(before[0].nextRotation, null);

    const rotated = await admin.post(`/projects/${project.id}/key/rotate`);
    assert.equal(rotated.status, 202, JSON.stringify(rotated.body));
    assert.equal(rotated.body.projectId, project.id);
    assert.equal(rotated.body.fromVersion, 1);
    assert.equal(rotated.body.toVersion, 2);
    assert.equal(rotated.body.total, 3);
    assert.match(rotated.body.keyUri, /object=tenant-master-[0-9a-f-]+-v2;/);

    const finished = await waitForRotation(admin, rotated.body.id);
    assert.equal(finished.state, 'completed', JSON.stringify(finished));
    assert.equal(finished.done, 3);

    const rows = await tenantDataKeys(test, project.id);
    assert.deepEqual(
      rows.map((row) => [row.tenant_key_version, row.tenant_key_uri]),
      rows.map(() => [2, rotated.body.keyUri]),
    );
    for (const [i, id] of promptIds.entries()) {
      assert.equal((await admin.get(`/prompts/${id}`)).body.version.body, `tenant body ${i}`);
    }

    const after = await admin.post('/prompts', {
      title: 'After',
      body: 'after rotation',
      projectId: project.id,
    });
    assert.equal(after.status, 201, JSON.stringify(after.body));
    const newRow = (await tenantDataKeys(test, project.id)).find(
      (row) => row.prompt_id === after.body.id,
    );
    assert.equal(newRow?.tenant_key_version, 2);

    const items = await tenantItems(admin, project.id);
    assert.deepEqual(
      items.map((item) => [item.keyVersion, item.state, item.dependents.count]),
      [
        [1, 'decrypt-only', 0],
        [2, 'active', 4],
      ],
    );
    assert.ok(items[1].lastRotated, 'lastRotated is set after a rotation');

    const filtered = await admin.get('/projects/keys');
    assert.equal(filtered.status, 200);
    assert.ok(
      (filtered.body.items as KeyInventoryItem[]).every((item) => item.keyClass === 'tenant'),
    );

    const audited = await test.appliance.database.sequelize.query<{ outcome: string }>(
      `SELECT outcome FROM audit_records WHERE action = 'projects.key.rotate' AND resource_id = :id`,
      { type: QueryTypes.SELECT, replacements: { id: project.id } },
    );
    assert.deepEqual(
      audited.map((row) => row.outcome),
      ['success'],
    );
  });

  it('rotation rejects unusable projects', async () => {
    const missing = await admin.post(`/projects/${crypto.randomUUID()}/key/rotate`);
    assert.equal(missing.status, 404);
    const malformed = await admin.post('/projects/p1/key/rotate');
    assert.equal(malformed.status, 400);

    const project = await createCustomerProject(test, admin, 'rotate revoked');
    assert.equal((await admin.post(`/projects/${project.id}/key/revoke`)).status, 200);
    const revoked = await admin.post(`/projects/${project.id}/key/rotate`);
    assert.equal(revoked.status, 423, JSON.stringify(revoked.body));
    const items = await tenantItems(admin, project.id);
    assert.equal(items[0].state, 'revoked');
    assert.equal(
      (await admin.post(`/projects/${project.id}/key/restore`, { pinFile: project.pinFile }))
        .status,
      200,
    );
  });

  it('rewrap resumes after a stop', async () => {
    const project = await createCustomerProject(test, admin, 'rotate resumable');
    for (let i = 0; i < 3; i++) {
      const created = await admin.post('/prompts', {
        title: `Resume ${i}`,
        body: `resume ${i}`,
        projectId: project.id,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }

    const { tenants, record } = await rotateInSecondDomain(test, project.id);
    try {
      const partial = await tenants.rotation.rewrap(record.id, { batchSize: 1, maxBatches: 1 });
      assert.equal(partial.state, 'running');
      assert.equal(partial.done, 1);

      const second = await admin.post(`/projects/${project.id}/key/rotate`);
      assert.equal(second.status, 409, JSON.stringify(second.body));

      const finished = await tenants.rotation.rewrap(record.id, { batchSize: 1 });
      assert.equal(finished.state, 'completed');
      assert.equal(finished.done, 3);
      const versions = (await tenantDataKeys(test, project.id)).map(
        (row) => row.tenant_key_version,
      );
      assert.deepEqual(versions, [2, 2, 2]);
    } finally {
      await tenants.rotation.stop();
      tenants.close();
    }
  });

  it('appliancectl rotates a project key', async () => {
    const project = await createCustomerProject(test, admin, 'rotate via CLI');
    const created = await admin.post('/prompts', {
      title: 'CLI',
      body: 'cli tenant body',
      projectId: project.id,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));

    const env = { ...sharedTokenEnv(), APPLIANCE_DATA_DIR: test.dataDir };
    const run = await runAppliancectl(['keys', 'rotate', '--project', project.id, '--wait'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`tenant key of project ${project.id} v1 -> v2`));
    assert.match(run.stdout, /completed, 1\/1 data keys moved/);

    // The running appliance reads the new version from the database.
    assert.equal(
      (await admin.get(`/prompts/${created.body.id}`)).body.version.body,
      'cli tenant body',
    );
    const next = await admin.post('/prompts', { title: 'Next', body: 'n', projectId: project.id });
    assert.equal(next.status, 201, JSON.stringify(next.body));
    const row = (await tenantDataKeys(test, project.id)).find(
      (entry) => entry.prompt_id === next.body.id,
    );
    assert.equal(row?.tenant_key_version, 2);

    const bad = await runAppliancectl(['keys', 'rotate', '--project', 'p1'], env);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--project must be a project id/);
  });
  it('minimum version waits for the rewrap', async () => {
    const project = await createCustomerProject(test, admin, 'retire versions');
    const promptIds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const created = await admin.post('/prompts', {
        title: `Retire ${i}`,
        body: `retire body ${i}`,
        projectId: project.id,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      promptIds.push(created.body.id);
    }
    const route = `/projects/${project.id}/key/minimum-version`;

    // The test drives the rewrap, so data keys stay under v1 until it finishes it.
    const running = test.appliance;
    const { tenants, record } = await rotateInSecondDomain(test, project.id);
    try {
      await tenants.rotation.rewrap(record.id, { batchSize: 1, maxBatches: 1 });

      const early = await admin.request('PUT', route, { minimumVersion: 2 });
      assert.equal(early.status, 409, JSON.stringify(early.body));
      assert.match(early.body.detail, /2 data keys are still wrapped under them/);
      assert.match(early.body.detail, new RegExp(`keys/rotations/${record.id}/resume`));
      const unchanged = await tenantItems(admin, project.id);
      assert.deepEqual(
        unchanged.map((item) => item.state),
        ['decrypt-only', 'active'],
      );

      const finished = await tenants.rotation.rewrap(record.id);
      assert.equal(finished.state, 'completed');

      const retired = await admin.request('PUT', route, { minimumVersion: 2 });
      assert.equal(retired.status, 200, JSON.stringify(retired.body));
      assert.equal(retired.body.minimumVersion, 2);
      assert.deepEqual(
        retired.body.items.map((item: { version: number; state: string }) => [
          item.version,
          item.state,
        ]),
        [
          [1, 'retired'],
          [2, 'active'],
        ],
      );
      assert.ok(retired.body.items[0].retiredAt, 'retiredAt is set');

      const items = await tenantItems(admin, project.id);
      assert.deepEqual(
        items.map((item) => [item.keyVersion, item.state, item.dependents.count]),
        [
          [1, 'retired', 0],
          [2, 'active', 3],
        ],
      );
      assert.equal(
        (await admin.get(`/prompts/${promptIds[0]}`)).body.version.body,
        'retire body 0',
      );

      // Stands for a restored backup: the data key of one prompt wrapped under v1 again.
      const [row] = await running.database.sequelize.query<{ wrapped_key: Buffer }>(
        'SELECT wrapped_key FROM project_data_keys WHERE prompt_id = :id',
        { type: QueryTypes.SELECT, replacements: { id: promptIds[1] } },
      );
      const customerKey = (keyUri: string) => ({ keyUri, wrappedKey: null, masterKeyUri: null });
      const dataKey = tenants.projects.unwrap(
        project.id,
        customerKey(record.keyUri),
        Buffer.from(row.wrapped_key),
      );
      const underV1 = tenants.projects.wrap(project.id, customerKey(project.keyUri), dataKey);
      dataKey.fill(0);
      await running.database.sequelize.query(
        `UPDATE project_data_keys SET wrapped_key = :wrapped, tenant_key_version = 1,
           tenant_key_uri = :uri WHERE prompt_id = :id`,
        { replacements: { wrapped: underV1, uri: project.keyUri, id: promptIds[1] } },
      );

      const refused = await admin.get(`/prompts/${promptIds[1]}`);
      assert.equal(refused.status, 409, JSON.stringify(refused.body));
      assert.equal(refused.body.type, 'urn:prompt-bank-appliance:problem:tenant_key_retired');
      assert.match(refused.body.detail, /version 1 of the tenant key/);
    } finally {
      await tenants.rotation.stop();
      tenants.close();
    }

    // A new rotation rewraps the restored key, and the CLI retires v2.
    const rotated = await admin.post(`/projects/${project.id}/key/rotate`);
    assert.equal(rotated.status, 202, JSON.stringify(rotated.body));
    assert.equal(rotated.body.total, 3);
    assert.equal((await waitForRotation(admin, rotated.body.id)).state, 'completed');
    assert.equal((await admin.get(`/prompts/${promptIds[1]}`)).body.version.body, 'retire body 1');

    const env = { ...sharedTokenEnv(), APPLIANCE_DATA_DIR: test.dataDir };
    const run = await runAppliancectl(
      ['keys', 'retire', '--project', project.id, '--minimum-version', '3'],
      env,
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^v2 {2}retired$/m);
    assert.match(run.stdout, /^v3 {2}active$/m);

    const audited = await test.appliance.database.sequelize.query<{
      outcome: string;
      actor_username: string;
    }>(
      `SELECT outcome, actor_username FROM audit_records
       WHERE action = 'projects.key.retire' AND resource_id = :id ORDER BY seq`,
      { type: QueryTypes.SELECT, replacements: { id: project.id } },
    );
    assert.deepEqual(
      audited.map((entry) => entry.outcome),
      ['failure', 'success', 'success'],
    );
    assert.match(audited[2].actor_username, /^cli:/);
  });

  it('minimum version rejects bad input', async () => {
    const project = await createCustomerProject(test, admin, 'retire input');
    const route = `/projects/${project.id}/key/minimum-version`;
    const cases: [unknown, number, string][] = [
      [{ minimumVersion: 0 }, 400, 'must be a whole number of at least 1'],
      [{ minimumVersion: 'two' }, 400, 'must be a whole number of at least 1'],
      [{ minimumVersion: 1.5 }, 400, 'must be a whole number of at least 1'],
      [{ minimumVersion: 2 }, 400, 'must be at most the active tenant key version 1'],
      [{ version: 1 }, 400, ''],
    ];
    for (const [body, status, message] of cases) {
      const response = await admin.request('PUT', route, body);
      assert.equal(response.status, status, JSON.stringify(response.body));
      assert.equal(response.body.errors[0].field, 'minimumVersion', JSON.stringify(body));
      assert.ok(response.body.errors[0].message.includes(message), JSON.stringify(response.body));
    }

    const missing = await admin.request(
      'PUT',
      `/projects/${crypto.randomUUID()}/key/minimum-version`,
      { minimumVersion: 1 },
    );
    assert.equal(missing.status, 404);
    const malformed = await admin.request('PUT', '/projects/p1/key/minimum-version', {
      minimumVersion: 1,
    });
    assert.equal(malformed.status, 400);

    // The authorisation matrix needs an OpenSearch node, so the denials are checked here too.
    for (const role of ['author', 'analyst', 'auditor'] as const) {
      const { client } = await test.userWithRole(role);
      const denied = await client.request('PUT', route, { minimumVersion: 1 });
      assert.equal(denied.status, 403, `${role}: ${JSON.stringify(denied.body)}`);
    }

    const env = { ...sharedTokenEnv(), APPLIANCE_DATA_DIR: test.dataDir };
    const cli = await runAppliancectl(
      ['keys', 'retire', '--project', project.id, '--minimum-version', '0'],
      env,
    );
    assert.equal(cli.code, 2, cli.stderr);
    assert.match(cli.stderr, /--minimum-version must be a whole number of at least 1/);
  });
});
