import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { QueryTypes } from 'sequelize';

import { HsmError } from '../../hsm/errors';
import type { KeyInventoryItem } from '../keys/inventory';
import type { ApiClient } from '../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../testing/harness';
import { createVault } from '../vault/vault';
import { openTenants } from './index';
import { tenantItems, waitForRotation } from './test-support';

interface TenantKeyRow {
  version: number;
  key_uri: string;
  wrapped_key: Buffer;
  master_key_uri: string;
  state: string;
}

interface ProjectDataKeyRow {
  prompt_id: string;
  wrapped_key: Buffer;
  tenant_key_uri: string;
  tenant_key_version: number;
}

/** Node's RFC 3394 unwrap, as a check of the stored layers that does not go through our code. */
function nodeUnwrap(kek: Buffer, wrapped: Buffer): Buffer {
  const decipher = crypto.createDecipheriv(
    'id-aes256-wrap',
    kek,
    Buffer.from('a6a6a6a6a6a6a6a6', 'hex'),
  );
  return Buffer.concat([decipher.update(wrapped), decipher.final()]);
}

describe('appliance tenant keys @integration', function () {
  this.timeout(60_000);

  let test: TestAppliance;
  let admin: ApiClient;
  let projectId: string;
  const promptIds: string[] = [];

  async function tenantKeys(): Promise<TenantKeyRow[]> {
    return test.appliance.database.sequelize.query<TenantKeyRow>(
      `SELECT version, key_uri, wrapped_key, master_key_uri, state FROM project_key_versions
       WHERE project_id = :projectId ORDER BY version`,
      { type: QueryTypes.SELECT, replacements: { projectId } },
    );
  }

  async function dataKeys(): Promise<ProjectDataKeyRow[]> {
    return test.appliance.database.sequelize.query<ProjectDataKeyRow>(
      `SELECT prompt_id, wrapped_key, tenant_key_uri, tenant_key_version FROM project_data_keys
       WHERE project_id = :projectId ORDER BY prompt_id`,
      { type: QueryTypes.SELECT, replacements: { projectId } },
    );
  }

  /** Reads each prompt through a vault with empty caches, so every read unwraps both layers in the token. */
  async function readWithEmptyCaches(): Promise<string[]> {
    const { database, keys, config } = test.appliance;
    const tenants = await openTenants(config, database, keys, undefined, { resume: false });
    const vault = createVault(database, keys, { encryption: tenants.encryption });
    try {
      const bodies: string[] = [];
      for (const id of promptIds) bodies.push((await vault.getPrompt(id)).version.body);
      return bodies;
    } finally {
      vault.close();
      tenants.close();
    }
  }

  before(async () => {
    test = await startTestAppliance();
    admin = await test.admin();
  });

  after(async () => {
    await test?.close();
  });

  it('wraps data keys under tenant key', async () => {
    const created = await admin.post('/projects', { name: 'Support bot', keyMode: 'appliance' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    projectId = created.body.id;
    assert.equal(created.body.keyUri, `sqlite:project_key_versions/${projectId}/1`);

    const listed = await admin.get('/projects');
    const project = listed.body.items.find((item: { id: string }) => item.id === projectId);
    assert.equal(project.masterKeyUri, test.appliance.keys.masterKeyUri);

    for (let i = 0; i < 3; i++) {
      const prompt = await admin.post('/prompts', {
        title: `Tenant ${i}`,
        body: `tenant body ${i}`,
        projectId,
      });
      assert.equal(prompt.status, 201, JSON.stringify(prompt.body));
      promptIds.push(prompt.body.id);
    }

    const [tenantKey] = await tenantKeys();
    assert.equal(tenantKey.key_uri, created.body.keyUri);
    assert.equal(tenantKey.master_key_uri, test.appliance.keys.masterKeyUri);
    const rows = await dataKeys();
    assert.deepEqual(
      rows.map((row) => [row.tenant_key_uri, row.tenant_key_version]),
      promptIds.map(() => [created.body.keyUri, 1]),
    );
    const direct = await test.appliance.database.sequelize.query(
      'SELECT prompt_id FROM prompt_data_keys WHERE prompt_id IN (:ids)',
      { type: QueryTypes.SELECT, replacements: { ids: promptIds } },
    );
    assert.equal(direct.length, 0);

    // The master key does not open a data key: only the tenant key does.
    const keys = test.appliance.keys;
    assert.throws(
      () => keys.unwrapDataKey(Buffer.from(rows[0].wrapped_key), tenantKey.master_key_uri),
      (error: unknown) => error instanceof HsmError && error.code === 'hsm_unwrap_failed',
    );
    const tenantKeyValue = keys.unwrapDataKey(
      Buffer.from(tenantKey.wrapped_key),
      tenantKey.master_key_uri,
    );
    assert.equal(nodeUnwrap(tenantKeyValue, Buffer.from(rows[0].wrapped_key)).length, 32);
    tenantKeyValue.fill(0);

    assert.deepEqual(await readWithEmptyCaches(), [
      'tenant body 0',
      'tenant body 1',
      'tenant body 2',
    ]);
  });

  it('master rotation keeps data keys', async () => {
    const before = await dataKeys();
    const [tenantBefore] = await tenantKeys();

    const rotated = await admin.post('/keys/rotate');
    assert.equal(rotated.status, 202, JSON.stringify(rotated.body));
    const done = await waitForRotation(admin, rotated.body.id);
    assert.equal(done.state, 'completed', JSON.stringify(done));

    const [tenantAfter] = await tenantKeys();
    assert.equal(tenantAfter.master_key_uri, rotated.body.keyUri);
    assert.notDeepEqual(
      Buffer.from(tenantAfter.wrapped_key),
      Buffer.from(tenantBefore.wrapped_key),
    );
    assert.deepEqual(
      (await dataKeys()).map((row) => Buffer.from(row.wrapped_key).toString('hex')),
      before.map((row) => Buffer.from(row.wrapped_key).toString('hex')),
    );

    const inventory = await admin.get('/keys');
    const masters = (inventory.body.items as KeyInventoryItem[]).filter(
      (item) => item.keyClass === 'master',
    );
    const wrapsOf = (uri: string) => masters.find((item) => item.location === uri)?.alsoWraps;
    assert.equal(wrapsOf(rotated.body.keyUri)?.project_key_versions, 1);
    assert.equal(wrapsOf(tenantBefore.master_key_uri)?.project_key_versions, 0);

    // Nothing needs the old master key version any more, so it can be retired.
    const retire = await admin.request('PUT', '/keys/master/minimum-version', {
      minimumVersion: rotated.body.toVersion,
    });
    assert.equal(retire.status, 200, JSON.stringify(retire.body));
    assert.deepEqual(await readWithEmptyCaches(), [
      'tenant body 0',
      'tenant body 1',
      'tenant body 2',
    ]);

    const project = (await admin.get('/projects')).body.items.find(
      (item: { id: string }) => item.id === projectId,
    );
    assert.equal(project.masterKeyUri, rotated.body.keyUri);
  });

  it('rotates and retires the tenant key', async () => {
    const rotated = await admin.post(`/projects/${projectId}/key/rotate`);
    assert.equal(rotated.status, 202, JSON.stringify(rotated.body));
    assert.equal(rotated.body.keyUri, `sqlite:project_key_versions/${projectId}/2`);
    const done = await waitForRotation(admin, rotated.body.id);
    assert.equal(done.state, 'completed', JSON.stringify(done));
    assert.equal(done.done, promptIds.length);

    assert.deepEqual(
      (await dataKeys()).map((row) => row.tenant_key_version),
      promptIds.map(() => 2),
    );
    const retire = await admin.request('PUT', `/projects/${projectId}/key/minimum-version`, {
      minimumVersion: 2,
    });
    assert.equal(retire.status, 200, JSON.stringify(retire.body));
    assert.deepEqual(await readWithEmptyCaches(), [
      'tenant body 0',
      'tenant body 1',
      'tenant body 2',
    ]);

    const items = await tenantItems(admin, projectId);
    assert.deepEqual(
      items.map((item) => [item.keyVersion, item.state, item.dependents.count, item.location]),
      [
        [1, 'retired', 0, `sqlite:project_key_versions/${projectId}/1`],
        [2, 'active', promptIds.length, `sqlite:project_key_versions/${projectId}/2`],
      ],
    );
    assert.ok(items.every((item) => item.masterKeyUri?.startsWith('pkcs11:')));
  });

  it('fails closed on an altered tenant key', async () => {
    const { database } = test.appliance;
    const [, active] = await tenantKeys();
    const altered = Buffer.from(active.wrapped_key);
    altered[10] ^= 0xff;
    await database.sequelize.query(
      'UPDATE project_key_versions SET wrapped_key = :altered WHERE project_id = :projectId AND version = 2',
      { replacements: { altered, projectId } },
    );
    const count = async () =>
      (
        await database.sequelize.query<{ n: number }>('SELECT COUNT(*) AS n FROM prompts', {
          type: QueryTypes.SELECT,
        })
      )[0].n;
    const prompts = await count();

    try {
      const rejected = await admin.post('/prompts', { title: 'x', body: 'y', projectId });
      assert.equal(rejected.status, 409, JSON.stringify(rejected.body));
      assert.match(rejected.body.type, /tenant_key_integrity_failed$/);
      assert.match(rejected.body.detail, /project_key_versions/);
      assert.equal(await count(), prompts);
      await assert.rejects(readWithEmptyCaches(), /integrity/i);
    } finally {
      await database.sequelize.query(
        'UPDATE project_key_versions SET wrapped_key = :wrapped WHERE project_id = :projectId AND version = 2',
        { replacements: { wrapped: Buffer.from(active.wrapped_key), projectId } },
      );
    }
    assert.deepEqual(await readWithEmptyCaches(), [
      'tenant body 0',
      'tenant body 1',
      'tenant body 2',
    ]);
  });

  it('adds tenant key at start', async () => {
    const { database, keys, config } = test.appliance;
    const created = await admin.post('/projects', { name: 'Older', keyMode: 'appliance' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const olderId = created.body.id as string;
    // The same state as a project made before tenant keys existed.
    await database.sequelize.query('DELETE FROM project_key_versions WHERE project_id = :id', {
      replacements: { id: olderId },
    });
    await database.sequelize.query('UPDATE projects SET key_uri = NULL WHERE id = :id', {
      replacements: { id: olderId },
    });

    const tenants = await openTenants(config, database, keys, undefined, { resume: false });
    try {
      const [row] = await database.sequelize.query<TenantKeyRow>(
        'SELECT version, key_uri, wrapped_key, master_key_uri, state FROM project_key_versions WHERE project_id = :id',
        { type: QueryTypes.SELECT, replacements: { id: olderId } },
      );
      assert.equal(row.key_uri, `sqlite:project_key_versions/${olderId}/1`);
      assert.equal(row.state, 'active');
      assert.equal(row.wrapped_key.length, 40);
      assert.equal(tenants.projects.keyUriFor(olderId), row.key_uri);
    } finally {
      tenants.close();
    }
  });
});
