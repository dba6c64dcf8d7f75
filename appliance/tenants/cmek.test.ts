import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import type { Transaction } from 'sequelize';

import { writePinFile } from '../../hsm/pin-files';
import { runPkcs11Tool } from '../../hsm/test-support';
import { initializeCustomerToken, tenantKeyLabelPrefix } from '../../hsm/tenant-keys';
import { ProblemError } from '../http/problem';
import { startAppliance, type RunningAppliance } from '../runtime';
import { ApiClient } from '../testing/api-client';
import { adminTestPassword, startTestAppliance, type TestAppliance } from '../testing/harness';
import { createVault } from '../vault/vault';
import { openTenants } from './index';

/** A customer token in the test process's token directory, with its user PIN file. */
interface CustomerToken {
  label: string;
  pin: string;
  pinFile: string;
}

function createCustomerToken(running: RunningAppliance, dir: string): CustomerToken {
  const label = `customer-${crypto.randomBytes(4).toString('hex')}`;
  const pin = crypto.randomBytes(12).toString('base64url');
  const pinFile = path.join(dir, `${label}-pin`);
  initializeCustomerToken(running.config.hsm, label, crypto.randomBytes(12).toString('hex'), pin);
  writePinFile(pinFile, pin);
  return { label, pin, pinFile };
}

/** Deletes the tenant master key from the customer token with OpenSC pkcs11-tool, as the customer would. */
function destroyTenantKey(running: RunningAppliance, token: CustomerToken, projectId: string) {
  runPkcs11Tool({ ...running.config.hsm, tokenLabel: token.label }, [
    '--login',
    '--pin',
    token.pin,
    '--delete-object',
    '--type',
    'secrkey',
    '--label',
    `${tenantKeyLabelPrefix}${projectId}`,
  ]);
}

async function signIn(url: string, caFile: string): Promise<ApiClient> {
  const client = new ApiClient(url, fs.readFileSync(caFile));
  const login = await client.post('/auth/login', {
    username: 'admin',
    password: adminTestPassword,
  });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  return client;
}

describe('customer-managed keys @integration', function () {
  this.timeout(60_000);

  let test: TestAppliance;
  let admin: ApiClient;
  /** The appliance that the restart step started on the same data directory, closed here. */
  let restarted: RunningAppliance | undefined;

  before(async () => {
    test = await startTestAppliance();
    admin = await test.admin();
  });

  after(async () => {
    if (restarted) {
      await restarted.close();
      fs.rmSync(test.dataDir, { recursive: true, force: true });
    } else {
      await test?.close();
    }
  });

  it('project creation validates input', async () => {
    const missingToken = await admin.post('/projects', { name: 'no token', keyMode: 'customer' });
    assert.equal(missingToken.status, 400);
    assert.equal(missingToken.body.errors[0].field, 'token');

    const badMode = await admin.post('/projects', { name: 'bad mode', keyMode: 'shared' });
    assert.equal(badMode.status, 400);
    assert.equal(badMode.body.errors[0].field, 'keyMode');

    const unknownToken = await admin.post('/projects', {
      name: 'unknown token',
      keyMode: 'customer',
      token: { label: 'no-such-token', pinFile: path.join(test.dataDir, 'missing-pin') },
    });
    assert.equal(unknownToken.status, 400);
    assert.equal(unknownToken.body.errors[0].field, 'token.label');

    const token = createCustomerToken(test.appliance, test.dataDir);
    const wrongPinFile = path.join(test.dataDir, 'wrong-pin');
    writePinFile(wrongPinFile, 'not-the-pin');
    const wrongPin = await admin.post('/projects', {
      name: 'wrong pin',
      keyMode: 'customer',
      token: { label: token.label, pinFile: wrongPinFile },
    });
    assert.equal(wrongPin.status, 400);
    assert.equal(wrongPin.body.errors[0].field, 'token.pinFile');

    const unknownProject = await admin.post('/prompts', {
      title: 't',
      body: 'b',
      projectId: crypto.randomUUID(),
    });
    assert.equal(unknownProject.status, 400);
    assert.equal(unknownProject.body.errors[0].field, 'projectId');
  });

  it('non-admin roles cannot create projects', async () => {
    const { client } = await test.userWithRole('author');
    const response = await client.post('/projects', { name: 'by author', keyMode: 'appliance' });
    assert.equal(response.status, 403);
  });

  it('revoke purges cached keys and restore reconnects', async () => {
    const token = createCustomerToken(test.appliance, test.dataDir);
    const created = await admin.post('/projects', {
      name: 'revoke case',
      keyMode: 'customer',
      token: { label: token.label, pinFile: token.pinFile },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const projectId = created.body.id as string;
    assert.match(created.body.keyUri, new RegExp(`^pkcs11:token=${token.label};object=`));
    assert.equal(created.body.keyState, 'active');

    const prompt = await admin.post('/prompts', { title: 'Revoke', body: 'secret', projectId });
    assert.equal(prompt.status, 201, JSON.stringify(prompt.body));
    assert.equal((await admin.get(`/prompts/${prompt.body.id}`)).status, 200);

    const revoked = await admin.post(`/projects/${projectId}/key/revoke`);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(revoked.body.keyState, 'revoked');

    const read = await admin.get(`/prompts/${prompt.body.id}`);
    assert.equal(read.status, 423);
    assert.match(read.body.type, /tenant_key_unavailable$/);
    const write = await admin.post('/prompts', { title: 'After', body: 'x', projectId });
    assert.equal(write.status, 423);

    const wrongPinFile = path.join(test.dataDir, 'revoke-wrong-pin');
    writePinFile(wrongPinFile, 'not-the-pin');
    const wrongRestore = await admin.post(`/projects/${projectId}/key/restore`, {
      pinFile: wrongPinFile,
    });
    assert.equal(wrongRestore.status, 400);
    assert.equal(wrongRestore.body.errors[0].field, 'pinFile');
    assert.equal((await admin.get(`/prompts/${prompt.body.id}`)).status, 423);

    const restored = await admin.post(`/projects/${projectId}/key/restore`, {
      pinFile: token.pinFile,
    });
    assert.equal(restored.status, 200, JSON.stringify(restored.body));
    assert.equal(restored.body.keyState, 'active');
    const again = await admin.get(`/prompts/${prompt.body.id}`);
    assert.equal(again.status, 200);
    assert.equal(again.body.version.body, 'secret');
  });

  it('revoke zeroes the project cache', async () => {
    const running = test.appliance;
    const tenants = await openTenants(running.config, running.database, running.keys);
    const vault = createVault(running.database, running.keys, { encryption: tenants.encryption });
    const commit = <T>(work: (transaction: Transaction) => Promise<T>) =>
      running.database.write(work);
    try {
      const token = createCustomerToken(running, test.dataDir);
      const project = await tenants.projects.create(
        { name: 'cache case', keyMode: 'customer', token },
        'test',
        commit,
      );
      const prompt = await vault.createPrompt(
        { title: 'Cached', body: 'cached body', projectId: project.id },
        'test',
        commit,
      );
      await vault.getPrompt(prompt.id);
      assert.equal(tenants.encryption.cachedProjectKeys(project.id), 1);

      await tenants.projects.revoke(project.id, commit);
      assert.equal(tenants.encryption.cachedProjectKeys(project.id), 0);
      await assert.rejects(vault.getPrompt(prompt.id), (error: Error) => {
        assert.ok(error instanceof ProblemError);
        assert.equal(error.code, 'tenant_key_unavailable');
        return true;
      });
    } finally {
      vault.close();
      tenants.close();
    }
  });

  it('destroyed key shreds only its project', async () => {
    const token = createCustomerToken(test.appliance, test.dataDir);
    const projectA = await admin.post('/projects', {
      name: 'shred A',
      keyMode: 'customer',
      token: { label: token.label, pinFile: token.pinFile },
    });
    assert.equal(projectA.status, 201, JSON.stringify(projectA.body));
    const projectB = await admin.post('/projects', { name: 'shred B', keyMode: 'appliance' });
    assert.equal(projectB.status, 201, JSON.stringify(projectB.body));
    const a = projectA.body.id as string;
    const b = projectB.body.id as string;

    const marker = `shred-marker-${crypto.randomBytes(6).toString('hex')}`;
    const promptA = await admin.post('/prompts', { title: 'A', body: `${marker} A`, projectId: a });
    assert.equal(promptA.status, 201, JSON.stringify(promptA.body));
    const versionA = await admin.post(`/prompts/${promptA.body.id}/versions`, {
      body: `${marker} A2`,
    });
    assert.equal(versionA.status, 201, JSON.stringify(versionA.body));
    const promptB = await admin.post('/prompts', { title: 'B', body: `${marker} B`, projectId: b });
    assert.equal(promptB.status, 201, JSON.stringify(promptB.body));
    assert.equal(
      (await admin.get(`/prompts/${promptA.body.id}`)).body.version.body,
      `${marker} A2`,
    );

    const rows = await test.appliance.database.sequelize.query<{ tenant_key_uri: string }>(
      'SELECT tenant_key_uri FROM project_data_keys WHERE prompt_id = :id',
      { type: 'SELECT' as never, replacements: { id: promptA.body.id } },
    );
    assert.equal(rows[0]?.tenant_key_uri, projectA.body.keyUri);

    destroyTenantKey(test.appliance, token, a);

    for (const path of [
      `/prompts/${promptA.body.id}`,
      `/prompts/${promptA.body.id}/versions/1`,
      `/prompts/${promptA.body.id}/versions/2`,
    ]) {
      const response = await admin.get(path);
      assert.equal(response.status, 423, `${path}: ${JSON.stringify(response.body)}`);
      assert.match(response.body.type, /tenant_key_unavailable$/);
    }
    const newVersion = await admin.post(`/prompts/${promptA.body.id}/versions`, { body: 'more' });
    assert.equal(newVersion.status, 423);
    const newPrompt = await admin.post('/prompts', { title: 'A3', body: 'x', projectId: a });
    assert.equal(newPrompt.status, 423);
    const restore = await admin.post(`/projects/${a}/key/restore`, { pinFile: token.pinFile });
    assert.equal(restore.status, 423);

    assert.equal((await admin.get(`/prompts/${promptB.body.id}`)).body.version.body, `${marker} B`);
    const moreB = await admin.post('/prompts', { title: 'B2', body: 'still', projectId: b });
    assert.equal(moreB.status, 201);

    const denied = await test.appliance.database.sequelize.query<{ count: number }>(
      `SELECT COUNT(*) AS count FROM audit_records
       WHERE resource_id = :id AND outcome = 'failure' AND reason = 'tenant_key_unavailable'`,
      { type: 'SELECT' as never, replacements: { id: promptA.body.id } },
    );
    assert.ok(denied[0].count >= 3, `audit failures recorded: ${denied[0].count}`);

    const projects = await admin.get('/projects');
    const states = new Map(
      (projects.body.items as { id: string; keyState: string }[]).map((p) => [p.id, p.keyState]),
    );
    assert.equal(states.get(a), 'unavailable');
    assert.equal(states.get(b), 'active');

    const inventory = await admin.get('/projects/keys');
    assert.equal(inventory.status, 200);
    const item = (
      inventory.body.items as { location: string; state: string; dependents: { count: number } }[]
    ).find((key) => key.location === projectA.body.keyUri);
    // The inventory names a key missing from its token destroyed.
    assert.equal(item?.state, 'destroyed');
    assert.equal(item?.dependents.count, 1);

    // Restart on the same data directory: project A stays shredded.
    const config = test.appliance.config;
    await test.appliance.close();
    const bytes = fs.readFileSync(config.databaseFile);
    assert.equal(bytes.includes(Buffer.from(marker)), false, 'plaintext found in the database');

    restarted = await startAppliance(config, { port: 0, search: false });
    const client = await signIn(restarted.url, path.join(config.tlsDir, 'appliance.crt'));
    assert.equal((await client.get(`/prompts/${promptA.body.id}`)).status, 423);
    assert.equal((await client.get(`/prompts/${promptB.body.id}`)).status, 200);
  });
});
