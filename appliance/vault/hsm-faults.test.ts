/**
 * The appliance against a failing SoftHSM token: a wrong PIN file at start,
 * the master key deleted from the token, and the HSM gone while the
 * appliance runs. Each test uses a token of its own, because it breaks it.
 *
 * An altered wrapped key is covered by "rejects an altered wrapped key" in
 * vault-storage.test.ts (409 integrity_check_failed, data kept). A missing
 * token is covered in hsm/faults.test.ts: at start, ensureToken initialises
 * a token under a label it does not find, so only the key provider refuses.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { QueryTypes } from 'sequelize';

import { masterKeyLabel } from '../../hsm/appliance-keys';
import { HsmError } from '../../hsm/errors';
import { runPkcs11Tool } from '../../hsm/test-support';
import { loadConfig } from '../platform/config';
import type { Database } from '../platform/database';
import { startAppliance } from '../runtime';
import { startTestAppliance, type TestAppliance } from '../testing/harness';

/** Environment that puts the token, its PIN files and the data of one test in `dir`. */
function ownTokenEnv(dir: string): Record<string, string> {
  return {
    APPLIANCE_DATA_DIR: path.join(dir, 'data'),
    SOFTHSM2_CONF: path.join(dir, 'softhsm', 'softhsm2.conf'),
    HSM_PIN_FILE: path.join(dir, 'secrets', 'hsm-user-pin'),
    HSM_SO_PIN_FILE: path.join(dir, 'secrets', 'hsm-so-pin'),
    LOG_LEVEL: 'silent',
  };
}

async function rows(database: Database, sql: string, replacements: Record<string, unknown> = {}) {
  return database.sequelize.query<Record<string, unknown>>(sql, {
    type: QueryTypes.SELECT,
    replacements,
  });
}

/** Everything a fault could damage: prompts, versions, wrapped keys and the audit chain. */
async function snapshot(database: Database) {
  return {
    prompts: await rows(database, 'SELECT * FROM prompts ORDER BY id'),
    versions: await rows(database, 'SELECT * FROM prompt_versions ORDER BY prompt_id, number'),
    dataKeys: await rows(database, 'SELECT * FROM prompt_data_keys ORDER BY prompt_id'),
  };
}

describe('vault with a failing HSM @integration', () => {
  let dir: string;
  let env: Record<string, string>;
  let app: TestAppliance | undefined;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vault-hsm-faults-'));
    env = ownTokenEnv(dir);
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start with a wrong PIN file and names the file', async () => {
    app = await startTestAppliance({ env });
    await app.close();
    app = undefined;

    const pin = fs.readFileSync(env.HSM_PIN_FILE, 'utf8').trim();
    fs.writeFileSync(env.HSM_PIN_FILE, `${pin.slice(0, -1)}${pin.endsWith('x') ? 'y' : 'x'}\n`);

    await assert.rejects(
      startAppliance(loadConfig(env), { port: 0, search: false }),
      (error: unknown) => {
        assert.ok(error instanceof HsmError, String(error));
        assert.equal(error.code, 'hsm_pin_incorrect');
        assert.ok(
          error.message.includes(env.HSM_PIN_FILE),
          `the message does not name the PIN file: ${error.message}`,
        );
        return true;
      },
    );

    // Nothing was left open: the right PIN starts the appliance again.
    fs.writeFileSync(env.HSM_PIN_FILE, `${pin}\n`);
    app = await startTestAppliance({ env });
  });

  it('returns 503 after master key deletion', async () => {
    app = await startTestAppliance({ env });
    const first = await app.admin();
    const created: string[] = [];
    for (const title of ['cached after restart', 'not cached']) {
      const response = await first.post('/prompts', { title, body: `body of ${title}` });
      assert.equal(response.status, 201, JSON.stringify(response.body));
      created.push(response.body.id);
    }
    await app.close();

    // A restart empties the data key cache; one read puts the first key back in it.
    app = await startTestAppliance({ env });
    const admin = await app.admin();
    const [cachedId, uncachedId] = created;
    assert.equal((await admin.get(`/prompts/${cachedId}`)).status, 200);
    const database = app.appliance.database;
    const before = await snapshot(database);

    const pin = fs.readFileSync(env.HSM_PIN_FILE, 'utf8').trim();
    runPkcs11Tool(app.appliance.config.hsm, [
      '--login',
      '--pin',
      pin,
      '--delete-object',
      '--type',
      'secrkey',
      '--label',
      masterKeyLabel,
    ]);

    const refused = await admin.get(`/prompts/${uncachedId}`);
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.type, 'urn:prompt-bank-appliance:problem:hsm_unavailable');
    assert.match(refused.body.detail, /master key is no longer on the token/);
    assert.doesNotMatch(JSON.stringify(refused.body), /body of/);

    const write = await admin.post('/prompts', { title: 'after the key is gone', body: 'x' });
    assert.equal(write.status, 503, JSON.stringify(write.body));

    // The cached key still opens its prompt; nothing stored changed.
    assert.equal((await admin.get(`/prompts/${cachedId}`)).status, 200);
    assert.deepEqual(await snapshot(database), before);

    const audited = await rows(
      database,
      `SELECT action, outcome, reason FROM audit_records WHERE resource_id = :id ORDER BY seq DESC LIMIT 1`,
      { id: uncachedId },
    );
    assert.equal(audited[0]?.action, 'vault.prompt.read');
    assert.equal(audited[0]?.outcome, 'failure');
    assert.match(String(audited[0]?.reason), /503|hsm|master key/i);
  });

  it('refuses a prompt create with 503 once the HSM is gone mid-run', async () => {
    app = await startTestAppliance({ env });
    const admin = await app.admin();
    const kept = await admin.post('/prompts', { title: 'kept', body: 'kept body' });
    assert.equal(kept.status, 201);
    const database = app.appliance.database;
    const before = await snapshot(database);
    const auditBefore = await rows(database, 'SELECT seq FROM audit_records ORDER BY seq');

    app.appliance.keys.close();

    const refused = await admin.post('/prompts', {
      title: `while the HSM is gone ${crypto.randomUUID()}`,
      body: 'never stored',
    });
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.match(refused.body.type, /problem:(hsm|audit)_unavailable$/);
    assert.deepEqual(await snapshot(database), before);

    // The audit HMAC key is in the HSM, so the refusal cannot be recorded: the chain stays as it was.
    assert.deepEqual(
      await rows(database, 'SELECT seq FROM audit_records ORDER BY seq'),
      auditBefore,
    );

    const health = await app.anonymous().get('/health');
    assert.equal(health.status, 503);
    assert.equal(health.body.checks.hsm.status, 'down');
    assert.match(health.body.checks.hsm.detail, /closed/);

    // A restart on the same token opens everything stored before the fault.
    await app.close();
    app = await startTestAppliance({ env });
    const again = await app.admin();
    const read = await again.get(`/prompts/${kept.body.id}`);
    assert.equal(read.status, 200);
    assert.equal(read.body.version.body, 'kept body');
    const verify = await again.get('/audit/verify');
    assert.equal(verify.body.ok, true, JSON.stringify(verify.body));
  });
});
