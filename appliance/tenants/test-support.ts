import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';

import { writePinFile } from '../../hsm/pin-files';
import { initializeCustomerToken } from '../../hsm/tenant-keys';
import type { KeyInventoryItem } from '../keys/inventory';
import type { RotationRecord } from '../keys/rotation-records';
import type { ApiClient } from '../testing/api-client';
import type { TestAppliance } from '../testing/harness';

/** Creates a customer token and a project keyed on it; returns the project id, its key URI, its token label and its PIN file. */
export async function createCustomerProject(test: TestAppliance, admin: ApiClient, name: string) {
  const label = `rotate-${crypto.randomBytes(4).toString('hex')}`;
  const pin = crypto.randomBytes(12).toString('base64url');
  const pinFile = path.join(test.dataDir, `${label}-pin`);
  initializeCustomerToken(
    test.appliance.config.hsm,
    label,
    crypto.randomBytes(12).toString('hex'),
    pin,
  );
  writePinFile(pinFile, pin);

  const created = await admin.post('/projects', {
    name,
    keyMode: 'customer',
    token: { label, pinFile },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return { id: created.body.id as string, keyUri: created.body.keyUri as string, label, pinFile };
}

/** Polls GET /keys/rotations/:id until the rewrap is no longer running. */
export async function waitForRotation(client: ApiClient, id: string): Promise<RotationRecord> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const response = await client.get(`/keys/rotations/${id}`);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    if (response.body.state !== 'running') return response.body;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`rotation ${id} still running after 5 s`);
}

/** Lists the GET /keys rows of class `tenant` that belong to `projectId`. */
export async function tenantItems(
  admin: ApiClient,
  projectId: string,
): Promise<KeyInventoryItem[]> {
  const inventory = await admin.get('/keys');
  assert.equal(inventory.status, 200, JSON.stringify(inventory.body));
  return (inventory.body.items as KeyInventoryItem[]).filter(
    (item) => item.keyClass === 'tenant' && item.projectId === projectId,
  );
}
