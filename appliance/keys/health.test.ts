import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';

import { masterKeyVersionLabel } from '../../hsm/appliance-keys';
import { runPkcs11Tool } from '../../hsm/test-support';
import type { ApiClient } from '../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../testing/harness';

/** Deletes the token object labelled `label` with OpenSC's pkcs11-tool, as an operator could by mistake. */
function deleteTokenKey(test: TestAppliance, label: string): void {
  const hsm = test.appliance.config.hsm;
  const pin = fs.readFileSync(hsm.pinFile, 'utf8').trim();
  runPkcs11Tool(hsm, [
    '--login',
    '--pin',
    pin,
    '--delete-object',
    '--type',
    'secrkey',
    '--label',
    label,
  ]);
}

async function waitForRotation(client: ApiClient, id: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const response = await client.get(`/keys/rotations/${id}`);
    if (response.body.state !== 'running') return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`rotation ${id} still running after 5 s`);
}

describe('health of the active master key @integration', function () {
  let test: TestAppliance;
  let admin: ApiClient;

  before(async function () {
    // A token of its own, because the test deletes a key from it.
    test = await startTestAppliance({
      env: { HSM_TOKEN_LABEL: `health-${crypto.randomBytes(4).toString('hex')}` },
    });
    admin = await test.admin();
  });

  after(async () => {
    await test?.close();
  });

  it('reports up while the key is there', async () => {
    const rotated = await admin.post('/keys/rotate', {});
    assert.equal(rotated.status, 202, JSON.stringify(rotated.body));
    await waitForRotation(admin, rotated.body.id);

    const health = await test.anonymous().get('/health');
    assert.equal(health.status, 200, JSON.stringify(health.body));
    assert.equal(health.body.checks.hsm.status, 'up');
  });

  it('reports down once the key is deleted', async () => {
    deleteTokenKey(test, masterKeyVersionLabel(2));

    const health = await test.anonymous().get('/health');
    assert.equal(health.status, 503, JSON.stringify(health.body));
    assert.equal(health.body.status, 'degraded');
    assert.equal(health.body.checks.hsm.status, 'down');
    assert.match(health.body.checks.hsm.detail, /vault-master-v2.*no longer on the token/);
    assert.equal(health.body.checks.database.status, 'up');
  });
});
