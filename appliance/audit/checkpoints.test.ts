import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { QueryTypes } from 'sequelize';

import { startTestAppliance, type TestAppliance } from '../testing/harness';
import type { ApiClient } from '../testing/api-client';
import { canonicalStatement, type CheckpointStatement } from './checkpoints';
import { CheckpointingAuditTrail, checkpointAction } from './checkpoints-trail';

/** Runs `openssl dgst -sha256 -verify` on files written from an API checkpoint response. */
function opensslVerify(
  dir: string,
  checkpoint: { statementBase64: string; signatureBase64: string; publicKeyPem: string },
  statementBytes: Buffer = Buffer.from(checkpoint.statementBase64, 'base64'),
) {
  const statementFile = path.join(dir, 'statement.json');
  const signatureFile = path.join(dir, 'sig.der');
  const publicKeyFile = path.join(dir, 'pub.pem');
  fs.writeFileSync(statementFile, statementBytes);
  fs.writeFileSync(signatureFile, Buffer.from(checkpoint.signatureBase64, 'base64'));
  fs.writeFileSync(publicKeyFile, checkpoint.publicKeyPem);

  return spawnSync(
    'openssl',
    ['dgst', '-sha256', '-verify', publicKeyFile, '-signature', signatureFile, statementFile],
    { encoding: 'utf8' },
  );
}

describe('audit checkpoints @integration', function () {
  let test: TestAppliance;
  let trail: CheckpointingAuditTrail;
  let admin: ApiClient;

  beforeEach(async function () {
    test = await startTestAppliance({ env: { AUDIT_CHECKPOINT_RECORDS: '5' } });
    trail = test.appliance.audit as CheckpointingAuditTrail;
    admin = await test.admin();
  });

  afterEach(async function () {
    await test?.close();
  });

  async function makeRecords(count: number): Promise<void> {
    for (let i = 0; i < count; i++) await admin.get('/users');
    await trail.idle();
  }

  async function countRows(table: 'audit_records' | 'audit_checkpoints'): Promise<number> {
    const rows = await test.appliance.database.sequelize.query<{ count: number }>(
      `SELECT COUNT(*) AS count FROM ${table}`,
      { type: QueryTypes.SELECT },
    );
    return rows[0].count;
  }

  it('signs a checkpoint after the record threshold', async function () {
    await makeRecords(6);

    const list = await admin.get('/audit/checkpoints');
    assert.equal(list.status, 200);
    assert.ok(list.body.items.length >= 1);

    const newest = list.body.items[0];
    const [record] = await test.appliance.database.sequelize.query<{
      action: string;
      hash: string;
    }>('SELECT action, hash FROM audit_records WHERE seq = :seq', {
      type: QueryTypes.SELECT,
      replacements: { seq: newest.seq },
    });
    assert.equal(record.action, checkpointAction);
    assert.equal(record.hash, newest.hash);
    assert.equal(newest.recordCount, newest.seq);
    assert.equal(newest.signingKeyUri, test.appliance.keys.signingKeyUri);
  });

  it('serves a checkpoint that openssl verifies', async function () {
    await makeRecords(6);
    const [newest] = (await admin.get('/audit/checkpoints')).body.items;

    const response = await admin.get(`/audit/checkpoints/${newest.seq}`);
    assert.equal(response.status, 200);
    const statement = response.body.statement as CheckpointStatement;
    assert.equal(statement.seq, newest.seq);
    assert.equal(statement.hash, newest.hash);
    assert.equal(
      Buffer.from(response.body.statementBase64, 'base64').toString('utf8'),
      canonicalStatement(statement),
    );

    const result = opensslVerify(test.dataDir, response.body);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /Verified OK/);
  });

  it('openssl rejects an altered statement', async function () {
    await makeRecords(6);
    const [newest] = (await admin.get('/audit/checkpoints')).body.items;
    const response = await admin.get(`/audit/checkpoints/${newest.seq}`);

    const altered = canonicalStatement({ ...response.body.statement, seq: newest.seq - 1 });
    const result = opensslVerify(test.dataDir, response.body, Buffer.from(altered, 'utf8'));

    assert.equal(result.status, 1);
    assert.match(result.stdout, /Verification failure/);
  });

  it('verify names a checkpoint whose record hash changed', async function () {
    await makeRecords(6);
    const [newest] = (await admin.get('/audit/checkpoints')).body.items;
    assert.equal((await trail.verify()).ok, true);

    await test.appliance.database.sequelize.query(
      'UPDATE audit_records SET hash = :hash WHERE seq = :seq',
      { replacements: { seq: newest.seq, hash: 'f'.repeat(64) } },
    );

    const result = await trail.verify();
    assert.equal(result.ok, false);
    const broken = result.checkpoints.broken.find((entry) => entry.seq === newest.seq);
    assert.ok(broken, JSON.stringify(result.checkpoints));
    assert.match(broken.reason, new RegExp(`checkpoint at seq ${newest.seq}`));
    assert.match(broken.reason, /has hash f{64}/);

    const overApi = await admin.get('/audit/verify');
    assert.equal(overApi.body.ok, false);
    assert.equal(
      overApi.body.checkpoints.broken.some((entry: { seq: number }) => entry.seq === newest.seq),
      true,
    );
  });

  it('verify names a checkpoint with a forged signature', async function () {
    await makeRecords(12);
    const [newest] = (await admin.get('/audit/checkpoints')).body.items;
    const [other] = await test.appliance.database.sequelize.query<{ signature: Buffer }>(
      'SELECT signature FROM audit_checkpoints WHERE seq <> :seq LIMIT 1',
      { type: QueryTypes.SELECT, replacements: { seq: newest.seq } },
    );
    assert.ok(other, 'a second checkpoint is needed to borrow its signature');

    await test.appliance.database.sequelize.query(
      'UPDATE audit_checkpoints SET signature = :signature WHERE seq = :seq',
      { replacements: { seq: newest.seq, signature: other.signature } },
    );

    const result = await trail.verify();
    assert.equal(result.ok, false);
    assert.deepEqual(
      result.checkpoints.broken.map((entry) => entry.seq),
      [newest.seq],
    );
    assert.match(result.checkpoints.broken[0].reason, /signature does not verify/);
  });

  it('writes by age only when new records exist', async function () {
    await makeRecords(1);
    const before = await countRows('audit_checkpoints');
    const later = new Date(Date.now() + 16 * 60_000);

    const seq = await trail.checkpointIfDue(later);
    assert.ok(seq !== undefined);
    assert.equal(await countRows('audit_checkpoints'), before + 1);

    assert.equal(await trail.checkpointIfDue(new Date(later.getTime() + 16 * 60_000)), undefined);
    assert.equal(await countRows('audit_checkpoints'), before + 1);
  });

  it('timer writes a due checkpoint', async function () {
    assert.equal(await countRows('audit_checkpoints'), 0);
    const timed = new CheckpointingAuditTrail(test.appliance.database, test.appliance.keys, {
      records: 1,
      minutes: 15,
      checkIntervalMs: 20,
    });

    timed.start();
    try {
      const deadline = Date.now() + 5000;
      while ((await countRows('audit_checkpoints')) === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await timed.stop();
    }

    assert.equal(await countRows('audit_checkpoints'), 1);
    assert.equal((await trail.verify()).ok, true);
  });

  it('stores nothing when the HSM is unavailable', async function () {
    await makeRecords(2);
    const records = await countRows('audit_records');
    const checkpoints = await countRows('audit_checkpoints');
    test.appliance.keys.close();

    await assert.rejects(trail.checkpointIfDue(new Date(Date.now() + 16 * 60_000)), {
      code: 'hsm_closed',
    });

    assert.equal(await countRows('audit_records'), records);
    assert.equal(await countRows('audit_checkpoints'), checkpoints);
  });

  it('returns 404 for an unknown checkpoint', async function () {
    const response = await admin.get('/audit/checkpoints/999999');
    assert.equal(response.status, 404);
    assert.match(response.body.detail, /seq 999999/);
  });

  it('returns 400 naming an invalid seq', async function () {
    const response = await admin.get('/audit/checkpoints/abc');
    assert.equal(response.status, 400);
    assert.match(JSON.stringify(response.body.errors), /seq/);
  });

  it('lets an auditor read and denies an analyst', async function () {
    await makeRecords(6);
    const auditor = await test.userWithRole('auditor');
    const analyst = await test.userWithRole('analyst');

    assert.equal((await auditor.client.get('/audit/checkpoints')).status, 200);
    assert.equal((await analyst.client.get('/audit/checkpoints')).status, 403);
  });
});
