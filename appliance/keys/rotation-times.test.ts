import assert from 'node:assert/strict';

import { startTestAppliance, type TestAppliance } from '../testing/harness';
import type { KeyInventoryItem } from './inventory';
import { parseRotationCron } from './rotation-schedule';
import { KeyInventory } from './service';

/** Opens a second key inventory on the test appliance's database with the schedule `rotationCron`. */
function openInventory(test: TestAppliance, rotationCron: string): Promise<KeyInventory> {
  const { config, database, keys, audit } = test.appliance;
  return KeyInventory.open(config, database, keys, { createdKeys: [] }, audit, { rotationCron });
}

function activeMaster(items: KeyInventoryItem[]): KeyInventoryItem {
  const item = items.find((entry) => entry.keyClass === 'master' && entry.state === 'active');
  assert.ok(item, 'the inventory lists an active master key');
  return item;
}

describe('inventory rotation times @integration', function () {
  this.timeout(60_000);
  let test: TestAppliance;

  before(async () => {
    test = await startTestAppliance();
  });

  after(async () => {
    await test?.close();
  });

  it('parses off as no schedule', () => {
    assert.equal(parseRotationCron('off'), null);
    assert.equal(parseRotationCron(' OFF '), null);
  });

  it('nextRotation follows the schedule', async () => {
    const inventory = await openInventory(test, '0 4 * * *');
    try {
      const items = await inventory.list();
      const master = activeMaster(items);
      assert.ok(master.nextRotation, 'the active master key has a next rotation');

      const next = new Date(master.nextRotation);
      assert.equal(next.getHours(), 4);
      assert.equal(next.getMinutes(), 0);
      assert.ok(next.getTime() > Date.now());
      assert.ok(next.getTime() - Date.now() <= 24 * 3600 * 1000);
      assert.equal(master.lastRotated, null);

      for (const item of items.filter((entry) => entry !== master)) {
        assert.equal(item.nextRotation, null, `${item.keyClass} ${item.location}`);
      }
    } finally {
      await inventory.stop();
    }
  });

  it('off leaves nextRotation null', async () => {
    const inventory = await openInventory(test, 'off');
    try {
      const items = await inventory.list();
      assert.equal(activeMaster(items).nextRotation, null);
    } finally {
      await inventory.stop();
    }
  });

  it('lastRotated is set by a rotation', async () => {
    const admin = await test.admin();
    const rotated = await admin.post('/keys/rotate');
    assert.equal(rotated.status, 202, JSON.stringify(rotated.body));

    const items = (await admin.get('/keys')).body.items as KeyInventoryItem[];
    const masters = items.filter((item) => item.keyClass === 'master');
    assert.ok(masters.length >= 2);
    for (const item of masters) assert.equal(item.lastRotated, rotated.body.startedAt);
    const audit = items.find((item) => item.keyClass === 'audit-hmac');
    assert.equal(audit?.lastRotated, null);
    assert.equal(audit?.nextRotation, null);
  });
});
