import assert from 'node:assert/strict';

import { QueryTypes } from 'sequelize';

import type { ApiClient } from '../testing/api-client';
import { sharedTokenEnv, startTestAppliance, type TestAppliance } from '../testing/harness';
import { createVault } from '../vault/vault';
import { runAppliancectl as appliancectl } from '../testing/appliancectl';
import { exitCodes } from './exit-codes';

describe('appliancectl keys @integration', function () {
  let test: TestAppliance;
  let admin: ApiClient;
  let env: Record<string, string>;
  const promptIds: string[] = [];

  before(async function () {
    test = await startTestAppliance();
    admin = await test.admin();
    env = { ...sharedTokenEnv(), APPLIANCE_DATA_DIR: test.dataDir };
    for (let i = 0; i < 3; i++) {
      const created = await admin.post('/prompts', { title: `CLI ${i}`, body: `cli body ${i}` });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      promptIds.push(created.body.id);
    }
  });

  after(async function () {
    await test?.close();
  });

  it('rejects a batch size of 0', async function () {
    const run = await appliancectl(['keys', 'rotate', '--batch-size', '0'], env);
    assert.equal(run.code, exitCodes.usage, run.stderr);
    assert.match(run.stderr, /--batch-size must be a whole number from 1 to 10000/);
  });

  it('rotates with --wait beside the appliance', async function () {
    const run = await appliancectl(['keys', 'rotate', '--wait', '--batch-size', '1'], env);
    assert.equal(run.code, exitCodes.ok, run.stderr);
    assert.match(run.stdout, /master key v1 -> v2/);
    assert.match(run.stdout, /rewrap 1\/3 data keys/);
    assert.match(run.stdout, /completed, 3\/3 data keys moved to master key v2/);

    const rows = await test.appliance.database.sequelize.query<{ master_key_version: number }>(
      'SELECT master_key_version FROM prompt_data_keys',
      { type: QueryTypes.SELECT },
    );
    assert.deepEqual(
      rows.map((row) => row.master_key_version),
      [2, 2, 2],
    );

    // The appliance process finds the version the CLI process generated on the token.
    const vault = createVault(test.appliance.database, test.appliance.keys);
    try {
      for (const [i, id] of promptIds.entries()) {
        assert.equal((await vault.getPrompt(id)).version.body, `cli body ${i}`);
      }
    } finally {
      vault.close();
    }
    const created = await admin.post('/prompts', { title: 'After CLI', body: 'new' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });

  it('retires version 1 and shows the states', async function () {
    const retire = await appliancectl(['keys', 'retire', '--minimum-version', '2'], env);
    assert.equal(retire.code, exitCodes.ok, retire.stderr);
    assert.match(retire.stdout, /v1 {2}retired/);

    const status = await appliancectl(['keys', 'status', '--json'], env);
    assert.equal(status.code, exitCodes.ok, status.stderr);
    const versions = JSON.parse(status.stdout) as { version: number; state: string }[];
    assert.deepEqual(
      versions.map((version) => [version.version, version.state]),
      [
        [1, 'retired'],
        [2, 'active'],
      ],
    );
  });

  it('refuses retiring with keys left', async function () {
    const rotate = await appliancectl(['keys', 'rotate'], env);
    assert.equal(rotate.code, exitCodes.ok, rotate.stderr);
    const id = /rotation ([0-9a-f-]{36})/.exec(rotate.stdout)?.[1];
    assert.ok(id, rotate.stdout);

    const refused = await appliancectl(['keys', 'retire', '--minimum-version', '3'], env);
    assert.equal(refused.code, exitCodes.usage, refused.stderr);
    assert.match(refused.stderr, /4 data keys are still wrapped/);

    const rewrap = await appliancectl(['keys', 'rewrap', id], env);
    assert.equal(rewrap.code, exitCodes.ok, rewrap.stderr);
    assert.match(rewrap.stdout, /completed, 4\/4/);
  });
});
