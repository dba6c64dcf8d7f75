import assert from 'node:assert/strict';

import { KeyType, ObjectClass } from 'graphene-pk11';

import {
  acquireModule,
  openSession,
  releaseModule,
  requireTokenSlot,
} from '../../hsm/pkcs11-module';

import { startTestAppliance, type TestAppliance } from '../testing/harness';
import type { ApiClient } from '../testing/api-client';
import { dataKeyLocation, type KeyInventoryItem } from './inventory';
import { readKeyCreation, recordKeyCreation, tokenKeys } from './key-records';
import { parseCkDate, readStartDates } from './token-dates';

describe('key inventory @integration', function () {
  let test: TestAppliance;
  let admin: ApiClient;

  before(async function () {
    test = await startTestAppliance();
    admin = await test.admin();
  });

  after(async function () {
    await test?.close();
  });

  async function inventory(): Promise<KeyInventoryItem[]> {
    const response = await admin.get('/keys');
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body.items;
  }

  function find(items: KeyInventoryItem[], keyClass: string, location?: string) {
    return items.filter(
      (item) =>
        item.keyClass === keyClass && (location === undefined || item.location === location),
    );
  }

  it('lists the three token keys with URIs', async function () {
    const keys = test.appliance.keys;
    const items = await inventory();

    for (const [keyClass, uri] of [
      ['master', keys.masterKeyUri],
      ['audit-hmac', keys.auditKeyUri],
      ['signing', keys.signingKeyUri],
    ]) {
      const [item] = find(items, keyClass, uri);
      assert.ok(item, `${keyClass} missing from ${JSON.stringify(items)}`);
      assert.match(item.location, /^pkcs11:token=appliance;object=/);
      assert.equal(item.state, 'active');
      assert.equal(item.keyVersion, 1);
      assert.ok(item.created, `${keyClass} has no creation record`);
      assert.ok(['token-setup', 'first-seen'].includes(item.created.source));
      assert.ok(!Number.isNaN(Date.parse(item.created.createdAt)));
    }
    const [audit] = find(items, 'audit-hmac');
    assert.equal(audit.dependents.type, 'audit-record');
    assert.ok(audit.dependents.count > 0);
  });

  it('counts data keys after creating prompts', async function () {
    const masterUri = test.appliance.keys.masterKeyUri;
    const before = await inventory();
    const masterBefore = find(before, 'master', masterUri)[0].dependents.count;
    const aggregateBefore = find(before, 'data-key')[0]?.dependents.count ?? 0;

    for (let i = 0; i < 3; i++) {
      const created = await admin.post('/prompts', { title: `Key count ${i}`, body: 'body' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }

    const after = await inventory();
    assert.equal(find(after, 'master', masterUri)[0].dependents.count, masterBefore + 3);
    const [aggregate] = find(after, 'data-key');
    assert.equal(aggregate.location, dataKeyLocation);
    assert.equal(aggregate.masterKeyUri, masterUri);
    assert.equal(aggregate.keyVersion, 1);
    assert.equal(aggregate.state, 'active');
    assert.deepEqual(aggregate.dependents, { type: 'prompt', count: aggregateBefore + 3 });
  });

  it('marks older versions decrypt-only and foreign masters destroyed', async function () {
    for (let i = 0; i < 3; i++) {
      await admin.post('/prompts', { title: `State ${i}`, body: 'body' });
    }
    const sequelize = test.appliance.database.sequelize;
    const foreignMaster = 'pkcs11:token=retired;object=vault-master;type=secret-key';
    await sequelize.query(
      `UPDATE prompt_data_keys SET key_version = 2
       WHERE prompt_id = (SELECT prompt_id FROM prompt_data_keys ORDER BY created_at DESC LIMIT 1)`,
    );
    await sequelize.query(
      `UPDATE prompt_data_keys SET master_key_uri = :uri
       WHERE prompt_id = (SELECT prompt_id FROM prompt_data_keys WHERE key_version = 1 ORDER BY created_at LIMIT 1)`,
      { replacements: { uri: foreignMaster } },
    );

    const items = await inventory();
    const ours = find(items, 'data-key').filter(
      (item) => item.masterKeyUri === test.appliance.keys.masterKeyUri,
    );
    assert.equal(ours.find((item) => item.keyVersion === 1)?.state, 'decrypt-only');
    assert.equal(ours.find((item) => item.keyVersion === 2)?.state, 'active');

    const [retired] = find(items, 'master', foreignMaster);
    assert.equal(retired.state, 'destroyed');
    assert.deepEqual(retired.dependents, { type: 'data-key', count: 1 });
    const foreignKeys = find(items, 'data-key').find((item) => item.masterKeyUri === foreignMaster);
    assert.equal(foreignKeys?.state, 'destroyed');
  });

  it('lets an auditor read and denies an analyst', async function () {
    const auditor = await test.userWithRole('auditor');
    const analyst = await test.userWithRole('analyst');

    assert.equal((await auditor.client.get('/keys')).status, 200);
    const denied = await analyst.client.get('/keys');
    assert.equal(denied.status, 403);
    assert.match(denied.body.detail, /keys:read/);
  });

  it('skips a start date the token cannot return', function () {
    const hsm = test.appliance.config.hsm;
    const label = `inventory-date-${process.pid}`;
    const module = acquireModule(hsm, 'inventory test');
    const session = openSession(requireTokenSlot(module, hsm.tokenLabel));
    try {
      // A session object, visible to every session of this process, with a set CKA_START_DATE.
      const object = session.create({
        class: ObjectClass.SECRET_KEY,
        keyType: KeyType.GENERIC_SECRET,
        token: false,
        value: Buffer.alloc(32, 1),
        label,
      });
      session.lib.C_SetAttributeValue(session.handle, object.handle, [
        { type: 0x110, value: '20260131' },
      ]);

      const dates = readStartDates(hsm, [
        { label, objectClass: 'secret-key' },
        { label: 'vault-master', objectClass: 'secret-key' },
      ]);
      // SoftHSM 2.6.1 with pkcs11js 2.x fails to return a set date (see readStartDate()).
      assert.equal(dates.has(label), false);
      assert.equal(dates.has('vault-master'), false);
    } finally {
      session.close();
      releaseModule(module, 'inventory test');
    }
  });

  it('keeps a stored creation record across starts', async function () {
    const database = test.appliance.database;
    const [master] = tokenKeys(test.appliance.keys);
    const stored = await readKeyCreation(database, master.uri);
    assert.ok(stored);

    await recordKeyCreation(database, [master], { createdKeys: [] }, new Map(), new Date(0));
    assert.deepEqual(await readKeyCreation(database, master.uri), stored);

    await recordKeyCreation(
      database,
      [master],
      { createdKeys: [] },
      new Map([[master.label, '2026-01-31']]),
    );
    assert.deepEqual(await readKeyCreation(database, master.uri), {
      createdAt: '2026-01-31',
      source: 'token-start-date',
    });
  });
});

describe('CK_DATE parsing', function () {
  it('parses YYYYMMDD', function () {
    assert.equal(parseCkDate(Buffer.from('20261204', 'ascii')), '2026-12-04');
  });

  it('treats empty or zero dates as unset', function () {
    assert.equal(parseCkDate(Buffer.alloc(0)), undefined);
    assert.equal(parseCkDate(Buffer.from('00000000', 'ascii')), undefined);
    assert.equal(parseCkDate(Buffer.from('2026-1-4', 'ascii')), undefined);
    assert.equal(parseCkDate(undefined), undefined);
  });
});
