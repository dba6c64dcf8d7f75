import assert from 'node:assert/strict';

import { QueryTypes } from 'sequelize';

import { HsmError } from '../../hsm/errors';
import type { KeyProvider } from '../../hsm/key-provider';
import { ProblemError } from '../http/problem';
import type { ApiClient } from '../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../testing/harness';
import { createVault, type Commit } from '../vault/vault';
import type { KeyInventoryItem } from './inventory';
import { KeyRotationService, type KeyOperator } from './rotation';
import type { RotationRecord } from './rotation-records';
import {
  auditedCommit,
  defaultRotationCron,
  parseRotationCron,
  scheduleRotation,
} from './rotation-schedule';
import { KeyInventory } from './service';

interface DataKeyRow {
  prompt_id: string;
  key_version: number;
  master_key_version: number;
  master_key_uri: string;
  wrapped_key: Buffer;
}

const operator: KeyOperator = { trigger: 'cli', actor: 'cli:test' };

async function dataKeys(test: TestAppliance): Promise<DataKeyRow[]> {
  return test.appliance.database.sequelize.query<DataKeyRow>(
    'SELECT * FROM prompt_data_keys ORDER BY prompt_id',
    { type: QueryTypes.SELECT },
  );
}

async function waitForRotation(client: ApiClient, id: string): Promise<RotationRecord> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const response = await client.get(`/keys/rotations/${id}`);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    if (response.body.state !== 'running') return response.body;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`rotation ${id} still running after 5 s`);
}

describe('master key rotation API @integration', function () {
  let test: TestAppliance;
  let admin: ApiClient;
  const promptIds: string[] = [];

  before(async function () {
    test = await startTestAppliance();
    admin = await test.admin();
    for (let i = 0; i < 5; i++) {
      const created = await admin.post('/prompts', { title: `Before ${i}`, body: `body ${i}` });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      promptIds.push(created.body.id);
    }
  });

  after(async function () {
    await test?.close();
  });

  it('denies rotation to analyst and auditor', async function () {
    const analyst = await test.userWithRole('analyst');
    const auditor = await test.userWithRole('auditor');

    const denied = await analyst.client.post('/keys/rotate');
    assert.equal(denied.status, 403);
    assert.match(denied.body.detail, /keys:execute/);
    assert.equal((await auditor.client.post('/keys/rotate')).status, 403);
    assert.equal((await analyst.client.get('/keys/rotations')).status, 403);
    assert.equal(
      (await analyst.client.request('PUT', '/keys/master/minimum-version', { minimumVersion: 1 }))
        .status,
      403,
    );
  });

  it('rotates and rewraps every data key', async function () {
    const started = await admin.post('/keys/rotate');
    assert.equal(started.status, 202, JSON.stringify(started.body));
    assert.equal(started.body.fromVersion, 1);
    assert.equal(started.body.toVersion, 2);
    assert.equal(started.body.total, 5);
    assert.match(
      started.body.keyUri,
      /^pkcs11:token=appliance;object=vault-master-v2;id=(%[0-9A-F]{2}){16};type=secret-key$/,
    );

    const finished = await waitForRotation(admin, started.body.id);
    assert.equal(finished.state, 'completed', JSON.stringify(finished));
    assert.equal(finished.done, 5);
    assert.equal(finished.total, 5);
    assert.equal(finished.actor, 'admin');
    assert.equal(finished.trigger, 'api');
    assert.notEqual(finished.durationMs, null);
    assert.ok(finished.durationMs! >= 0);

    const rows = await dataKeys(test);
    assert.equal(rows.length, 5);
    for (const row of rows) {
      assert.equal(row.master_key_version, 2);
      assert.equal(row.master_key_uri, started.body.keyUri);
    }
    for (const [i, id] of promptIds.entries()) {
      const read = await admin.get(`/prompts/${id}`);
      assert.equal(read.status, 200, JSON.stringify(read.body));
      assert.equal(read.body.version.body, `body ${i}`);
    }
  });

  it('wraps new prompts under the active version', async function () {
    const created = await admin.post('/prompts', { title: 'After', body: 'after rotation' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const row = (await dataKeys(test)).find((key) => key.prompt_id === created.body.id);
    assert.equal(row?.master_key_version, 2);

    // A fresh vault has no cached data key, so the read unwraps under version 2.
    const vault = createVault(test.appliance.database, test.appliance.keys);
    assert.equal((await vault.getPrompt(created.body.id)).version.body, 'after rotation');
    vault.close();
  });

  it('wraps new tenant keys under the active version', async function () {
    const created = await admin.post('/projects', { name: 'After rotation', keyMode: 'appliance' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.match(created.body.masterKeyUri, /object=vault-master-v2;/);

    const listed = await admin.get('/projects');
    const project = listed.body.items.find((item: { id: string }) => item.id === created.body.id);
    assert.match(project.masterKeyUri, /object=vault-master-v2;/);
  });

  it('audits the rotation as evidence', async function () {
    const rows = await test.appliance.database.sequelize.query<{
      actor_username: string;
      outcome: string;
      resource_id: string;
    }>(
      `SELECT actor_username, outcome, resource_id FROM audit_records
       WHERE action = 'keys.master.rotate' AND outcome = 'success'`,
      { type: QueryTypes.SELECT },
    );
    assert.equal(rows.length, 1);
    assert.equal(rows[0].actor_username, 'admin');

    const list = await admin.get('/keys/rotations');
    assert.equal(list.status, 200);
    assert.equal(list.body.items[0].id, rows[0].resource_id);
  });

  it('lists master key versions in the inventory', async function () {
    const response = await admin.get('/keys');
    assert.equal(response.status, 200);
    const masters = (response.body.items as KeyInventoryItem[]).filter(
      (item) => item.keyClass === 'master',
    );
    assert.deepEqual(
      masters.map((item) => [item.keyVersion, item.state, item.label, item.dependents.count]),
      [
        [1, 'decrypt-only', 'vault-master', 0],
        [2, 'active', 'vault-master-v2', 6],
      ],
    );
    assert.equal(masters[1].created?.source, 'rotation');
  });

  it('rejects an invalid minimum version', async function () {
    for (const [body, field] of [
      [{ minimumVersion: 0 }, 'minimumVersion'],
      [{ minimumVersion: 'two' }, 'minimumVersion'],
      [{ minimumVersion: 3 }, 'minimumVersion'],
    ] as const) {
      const response = await admin.request('PUT', '/keys/master/minimum-version', body);
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.errors[0].field, field);
    }
  });

  it('retires version 1 once no data key uses it', async function () {
    const response = await admin.request('PUT', '/keys/master/minimum-version', {
      minimumVersion: 2,
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(
      response.body.items.map((version: { version: number; state: string }) => [
        version.version,
        version.state,
      ]),
      [
        [1, 'retired'],
        [2, 'active'],
      ],
    );

    const lower = await admin.request('PUT', '/keys/master/minimum-version', { minimumVersion: 1 });
    assert.equal(lower.status, 400);
    assert.match(lower.body.errors[0].message, /already retired/);
  });

  it('reports an unknown rotation id', async function () {
    const missing = await admin.get('/keys/rotations/00000000-0000-4000-8000-000000000000');
    assert.equal(missing.status, 404);
    const invalid = await admin.get('/keys/rotations/not-a-uuid');
    assert.equal(invalid.status, 400);
  });
});

describe('master key rewrap job @integration', function () {
  let test: TestAppliance;
  let rotation: KeyRotationService;
  let commit: Commit;
  const prompts: { id: string; body: string }[] = [];

  before(async function () {
    test = await startTestAppliance();
    const { database, keys } = test.appliance;
    rotation = new KeyRotationService(database, keys);
    commit = (work) => database.write(work);

    const vault = createVault(database, keys);
    for (let i = 0; i < 10; i++) {
      const body = `rewrap body ${i}`;
      const prompt = await vault.createPrompt({ title: `R${i}`, body }, 'test-user', commit);
      prompts.push({ id: prompt.id, body });
    }
    vault.close();
  });

  after(async function () {
    await test?.close();
  });

  async function readAll(): Promise<void> {
    const vault = createVault(test.appliance.database, test.appliance.keys);
    try {
      for (const prompt of prompts) {
        assert.equal((await vault.getPrompt(prompt.id)).version.body, prompt.body);
      }
    } finally {
      vault.close();
    }
  }

  it('refuses retiring while version 1 keys remain', async function () {
    const { database, audit } = test.appliance;
    const record = await rotation.rotate(
      operator,
      auditedCommit(database, audit, operator, 'keys.master.rotate'),
    );
    assert.equal(record.toVersion, 2);
    assert.equal(record.total, 10);

    await readAll();
    await assert.rejects(
      database.write((transaction) => rotation.setMinimumVersion(2, transaction)),
      (error: unknown) =>
        error instanceof ProblemError &&
        error.status === 409 &&
        /10 data keys are still wrapped/.test(error.detail),
    );
  });

  it('resumes a rewrap stopped after two batches', async function () {
    const [running] = await rotation.list();
    assert.equal(running.state, 'running');
    const before = await dataKeys(test);

    const stopped = await rotation.rewrap(running.id, { batchSize: 3, maxBatches: 2 });
    assert.equal(stopped.state, 'running');
    assert.equal(stopped.done, 6);
    const partial = await dataKeys(test);
    assert.equal(partial.filter((row) => row.master_key_version === 2).length, 6);
    await readAll();

    // A second service stands for the next process after a crash.
    const next = new KeyRotationService(test.appliance.database, test.appliance.keys);
    const resumed = await next.rewrap(running.id, { batchSize: 3 });
    assert.equal(resumed.state, 'completed');
    assert.equal(resumed.done, 10);
    assert.equal(resumed.total, 10);

    const after = await dataKeys(test);
    assert.equal(after.length, 10);
    for (const row of after) {
      assert.equal(row.master_key_version, 2);
      const old = before.find((key) => key.prompt_id === row.prompt_id)!;
      assert.notDeepEqual(Buffer.from(row.wrapped_key), Buffer.from(old.wrapped_key));
    }
    await readAll();

    const again = await next.rewrap(running.id);
    assert.equal(again.done, 10, 'a completed rotation moves nothing again');
  });

  it('fails closed on a retired version key', async function () {
    const { database, keys } = test.appliance;
    const [target] = await dataKeys(test);
    // Stands for a restored backup: the same data key, wrapped under version 1.
    const dataKey = keys.unwrapDataKey(Buffer.from(target.wrapped_key), target.master_key_uri);
    const underV1 = keys.wrapDataKey(dataKey);
    dataKey.fill(0);

    await database.write((transaction) => rotation.setMinimumVersion(2, transaction));
    await database.sequelize.query(
      `UPDATE prompt_data_keys SET wrapped_key = :wrapped, master_key_version = 1, master_key_uri = :uri
       WHERE prompt_id = :id`,
      { replacements: { wrapped: underV1, uri: keys.masterKeyUri, id: target.prompt_id } },
    );

    const vault = createVault(database, keys);
    await assert.rejects(
      vault.getPrompt(target.prompt_id),
      (error: unknown) =>
        error instanceof ProblemError &&
        error.code === 'master_key_retired' &&
        error.detail.includes('master key version 1'),
    );
    vault.close();

    const record = await rotation.rewrapToActive(operator, commit);
    assert.equal(record.total, 1);
    const done = await rotation.rewrap(record.id);
    assert.equal(done.state, 'completed');
    assert.equal(done.done, 1);
    await readAll();
  });

  it('refuses a rotation while one runs', async function () {
    const { database, audit } = test.appliance;
    const record = await rotation.rotate(
      operator,
      auditedCommit(database, audit, operator, 'keys.master.rotate'),
    );
    await assert.rejects(
      rotation.rotate(operator, commit),
      (error: unknown) =>
        error instanceof ProblemError && error.status === 409 && error.detail.includes(record.id),
    );
    assert.equal((await rotation.rewrap(record.id)).state, 'completed');
  });

  it('runs a scheduled rotation as scheduler', async function () {
    const { database, audit } = test.appliance;
    const task = scheduleRotation(defaultRotationCron, rotation, database, audit);
    try {
      await task.execute();
    } finally {
      await task.destroy();
    }

    const [latest] = await rotation.list();
    assert.equal(latest.actor, 'scheduler');
    assert.equal(latest.trigger, 'scheduler');
    const audited = await database.sequelize.query<{ resource_id: string }>(
      `SELECT resource_id FROM audit_records
       WHERE action = 'keys.master.rotate' AND actor_username = 'scheduler'`,
      { type: QueryTypes.SELECT },
    );
    assert.deepEqual(
      audited.map((row) => row.resource_id),
      [latest.id],
    );
    assert.equal((await rotation.rewrap(latest.id)).state, 'completed');
  });

  it('stores nothing when the HSM fails (stubbed HSM)', async function () {
    const { database, keys } = test.appliance;
    const failing = Object.create(keys) as KeyProvider;
    failing.createMasterKeyVersion = () => {
      throw new HsmError('hsm_unavailable', 'The token stopped answering.');
    };
    const versionsBefore = await rotation.versions();

    const service = new KeyRotationService(database, failing);
    await assert.rejects(service.rotate(operator, commit), HsmError);
    assert.deepEqual(await rotation.versions(), versionsBefore);
  });

  it('destroys the new key when the audit fails', async function () {
    const { database, keys } = test.appliance;
    const versionsBefore = await rotation.versions();
    let destroyed: string | undefined;
    const watching = Object.create(keys) as KeyProvider;
    watching.destroyMasterKeyVersion = (uri) => {
      destroyed = uri;
      keys.destroyMasterKeyVersion(uri);
    };
    const failingAudit = {
      append: () => Promise.reject(new Error('audit store unavailable')),
    };

    const service = new KeyRotationService(database, watching);
    await assert.rejects(
      service.rotate(
        operator,
        auditedCommit(database, failingAudit, operator, 'keys.master.rotate'),
      ),
      /audit store unavailable/,
    );
    assert.deepEqual(await rotation.versions(), versionsBefore);
    assert.ok(destroyed, 'the generated key was destroyed');
    assert.throws(() => keys.unwrapDataKey(Buffer.alloc(40), destroyed), HsmError);
  });
});

describe('rotation schedule', function () {
  it('defaults to monthly', function () {
    assert.equal(parseRotationCron(undefined), defaultRotationCron);
    assert.equal(parseRotationCron(''), defaultRotationCron);
    assert.equal(parseRotationCron('*/5 * * * *'), '*/5 * * * *');
  });

  it('names the variable of an invalid expression', function () {
    assert.throws(
      () => parseRotationCron('61 * * * *'),
      /KEY_ROTATION_CRON "61 \* \* \* \*" is not a valid cron expression/,
    );
    assert.throws(() => parseRotationCron('monthly'), /KEY_ROTATION_CRON/);
  });

  it('rejects an invalid expression before opening anything @integration', async function () {
    const test = await startTestAppliance();
    try {
      const { config, database, keys, audit } = test.appliance;
      await assert.rejects(
        KeyInventory.open(config, database, keys, { createdKeys: [] }, audit, {
          rotationCron: '0 25 * * *',
        }),
        /KEY_ROTATION_CRON "0 25 \* \* \*" is not a valid cron expression/,
      );
    } finally {
      await test.close();
    }
  });
});
