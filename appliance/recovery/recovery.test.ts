import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { QueryTypes } from 'sequelize';

import { runAppliancectl as appliancectl } from '../testing/appliancectl';
import { exitCodes } from '../cli/exit-codes';
import { loadConfig, type ApplianceConfig } from '../platform/config';
import { isPlainSqlite } from '../platform/database-encryption';
import { databaseKeyFileOf, readDatabaseKeyRecord } from '../platform/database-key';
import { startAppliance, type RunningAppliance } from '../runtime';
import { ApiClient, type ApiResponse } from '../testing/api-client';
import {
  adminTestPassword,
  sharedTokenEnv,
  startTestAppliance,
  type TestAppliance,
} from '../testing/harness';
import { mfaChallengeCookieName } from '../identity/mfa-challenges';
import { RecoveryInputError } from './errors';
import { initRecovery } from './init';
import { RecoveryKey, sealDatabaseKey, sealDataKey } from './recovery-key';
import { restoreBackup } from './restore';
import { combineShares, parseShare, splitRecoveryKey } from './shares';

/** Flips one hex digit in the share part of `share`, keeping its checksum. */
function mistype(share: string): string {
  const index = share.length - 20;
  const digit = share[index] === '0' ? '1' : '0';
  return share.slice(0, index) + digit + share.slice(index + 1);
}

describe('recovery shares and escrow', () => {
  it('combines 2 of 3, names bad shares', async () => {
    const key = RecoveryKey.generate();
    const shares = await splitRecoveryKey(key.bytes(), 3, 2);
    const fingerprint = key.fingerprint();

    for (const pair of [
      [0, 1],
      [1, 2],
      [0, 2],
    ]) {
      const parsed = pair.map((index) => parseShare(shares[index], index + 1));
      const rebuilt = await combineShares(parsed, fingerprint, 2);
      assert.ok(rebuilt.equals(key.bytes()));
    }

    await assert.rejects(
      combineShares([parseShare(shares[0], 1)], fingerprint, 2),
      /2 shares are needed .* 1 given/,
    );
    assert.throws(() => parseShare(mistype(shares[1]), 2), /--share number 2 fails its checksum/);
    assert.throws(() => parseShare('hello', 1), /--share number 1 is not a recovery share/);
    await assert.rejects(
      combineShares([parseShare(shares[0], 1), parseShare(shares[0], 2)], fingerprint, 2),
      /given twice/,
    );

    const other = await splitRecoveryKey(RecoveryKey.generate().bytes(), 3, 2);
    await assert.rejects(
      combineShares([parseShare(shares[0], 1), parseShare(other[1], 2)], fingerprint, 2),
      /--share number 2 belongs to recovery key/,
    );
  });

  it('escrow opens only for its prompt', () => {
    const key = RecoveryKey.generate();
    const dataKey = crypto.randomBytes(32);
    const sealed = sealDataKey(key.publicKey(), dataKey, 'prompt-a', 1);

    assert.ok(key.openDataKey(sealed, 'prompt-a', 1).equals(dataKey));
    assert.throws(() => key.openDataKey(sealed, 'prompt-b', 1));
    assert.throws(() => key.openDataKey(sealed, 'prompt-a', 2));
    assert.throws(() => RecoveryKey.generate().openDataKey(sealed, 'prompt-a', 1));
  });

  it('database key escrow is not a data key', () => {
    const key = RecoveryKey.generate();
    const databaseKey = crypto.randomBytes(32);
    const sealed = sealDatabaseKey(key.publicKey(), databaseKey);

    assert.ok(key.openDatabaseKey(sealed).equals(databaseKey));
    assert.throws(() => key.openDataKey(sealed, 'prompt-a', 1));
    assert.throws(() => key.openDatabaseKey(sealDataKey(key.publicKey(), databaseKey, 'a', 1)));
    assert.throws(() => RecoveryKey.generate().openDatabaseKey(sealed));
  });
});

/** Sign-in data of a user with a TOTP authenticator. */
interface TotpUser {
  username: string;
  password: string;
  secret: string;
}

describe('recovery drill: backup, shares and a fresh token @integration', function () {
  this.timeout(180_000);

  let applianceA: TestAppliance;
  let envA: Record<string, string>;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'recovery-drill-'));
  const backupFile = path.join(work, 'appliance-a.sqlite');
  const markers = [`marker-${crypto.randomUUID()}`, `marker-${crypto.randomUUID()}`];
  const promptIds: string[] = [];
  /** A prompt of an appliance-keyed project, whose data key is wrapped by the escrowed tenant key. */
  let projectPromptId = '';
  let shares: Record<string, string> = {};
  let applianceB: RunningAppliance | undefined;
  let config: ApplianceConfig;
  /** A user of appliance A with an active TOTP authenticator, enrolled after `recovery init`. */
  let totpUser: TotpUser;
  /** A user who enrolled TOTP before `recovery init`, so only init can escrow the key. */
  let earlyTotpUser: TotpUser;
  /** An OAuth client of appliance A and the key id that signed its token there. */
  let oauthClient: { clientId: string; clientSecret: string; kid: string };

  /** Computes a TOTP code with oathtool (RFC 6238, SHA-1, 6 digits, 30 s), `offsetSeconds` from now. */
  function oathtoolCode(secret: string, offsetSeconds = 0): string {
    const at = Math.floor(Date.now() / 1000) + offsetSeconds;
    return execFileSync('oathtool', ['--totp', '-b', '-N', `@${at}`, secret], {
      encoding: 'utf8',
    }).trim();
  }

  /** Creates a user of appliance A with `role` and enrols and confirms a TOTP authenticator. */
  async function enrolTotpUser(role: 'author' | 'analyst'): Promise<TotpUser> {
    const user = await applianceA.userWithRole(role);
    const enrolment = await user.client.post('/auth/mfa/totp/enroll');
    assert.equal(enrolment.status, 201, JSON.stringify(enrolment.body));
    const secret = enrolment.body.secret as string;
    const confirmed = await user.client.post('/auth/mfa/totp/confirm', {
      code: oathtoolCode(secret),
    });
    assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
    return { username: user.username, password: user.password, secret };
  }

  /** Signs `user` in to appliance B with the password and then a TOTP code from oathtool. */
  async function signInWithTotp(user: TotpUser): Promise<ApiResponse> {
    const client = new ApiClient(
      applianceB!.url,
      fs.readFileSync(path.join(config.tlsDir, 'appliance.crt')),
    );
    const passwordStep = await client.post('/auth/login', {
      username: user.username,
      password: user.password,
    });
    assert.equal(passwordStep.body.mfaRequired, true, JSON.stringify(passwordStep.body));
    const challenge = [passwordStep.headers['set-cookie'] ?? []]
      .flat()
      .find((line) => line.startsWith(`${mfaChallengeCookieName}=`));
    // The next time step, because appliance A already accepted a code of the current one.
    return client.request(
      'POST',
      '/auth/mfa/verify',
      { code: oathtoolCode(user.secret, 30) },
      { cookie: challenge?.split(';')[0] ?? '' },
    );
  }

  /** Requests a client credentials token from `client` with HTTP Basic client authentication. */
  function requestClientToken(client: ApiClient): Promise<ApiResponse> {
    const encode = (text: string) => encodeURIComponent(text).replace(/%20/g, '+');
    const credentials = `${encode(oauthClient.clientId)}:${encode(oauthClient.clientSecret)}`;
    return client.request(
      'POST',
      '/oauth/token',
      new URLSearchParams({ grant_type: 'client_credentials' }).toString(),
      {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(credentials).toString('base64')}`,
      },
    );
  }

  /** Env of a machine B: an empty data dir and a token of its own (new master key). */
  function freshMachine(): { env: Record<string, string>; dataDir: string } {
    const dataDir = fs.mkdtempSync(path.join(work, 'machine-b-'));
    return {
      dataDir,
      env: {
        ...sharedTokenEnv(),
        APPLIANCE_DATA_DIR: dataDir,
        HSM_TOKEN_LABEL: `restore-${crypto.randomBytes(4).toString('hex')}`,
      },
    };
  }

  before(async function () {
    applianceA = await startTestAppliance();
    envA = { ...sharedTokenEnv(), APPLIANCE_DATA_DIR: applianceA.dataDir };
    const admin = await applianceA.admin();

    for (const marker of markers.slice(0, 1)) {
      const created = await admin.post('/prompts', { title: `T ${marker}`, body: `B ${marker}` });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      promptIds.push(created.body.id);
    }
    earlyTotpUser = await enrolTotpUser('analyst');
    const escrowed = await applianceA.appliance.database.sequelize.query(
      'SELECT user_id FROM totp_escrow',
      { type: QueryTypes.SELECT },
    );
    assert.equal(escrowed.length, 0, 'no recovery key exists yet, so nothing is escrowed');
  });

  after(async function () {
    await applianceB?.close();
    await applianceA?.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('init fails closed without audit', async () => {
    const { database, keys } = applianceA.appliance;
    await assert.rejects(
      initRecovery(
        {
          database,
          keys,
          operator: 'cli:test',
          audit: {
            append: () => Promise.reject(new Error('audit store unavailable')),
          },
        },
        { custodians: ['alice', 'bob'], threshold: 2 },
      ),
      /audit store unavailable/,
    );
    const rows = await database.sequelize.query('SELECT * FROM recovery_keys', {
      type: QueryTypes.SELECT,
    });
    assert.equal(rows.length, 0);
  });

  it('init rejects threshold above N', async () => {
    const run = await appliancectl(
      ['recovery', 'init', '--custodian', 'alice', '--custodian', 'bob', '--threshold', '3'],
      envA,
    );
    assert.equal(run.code, exitCodes.usage, run.stderr);
    assert.match(
      run.stderr,
      /--threshold must be a whole number from 2 to the number of custodians/,
    );
  });

  it('init prints shares, escrows keys', async () => {
    const run = await appliancectl(
      [
        'recovery',
        'init',
        ...['alice', 'bob', 'carol'].flatMap((name) => ['--custodian', name]),
        '--threshold',
        '2',
      ],
      envA,
    );
    assert.equal(run.code, exitCodes.ok, run.stderr);
    // One prompt data key and the TOTP data key of the user who enrolled before init.
    assert.match(
      run.stdout,
      /2 of 3 shares restore it; 2 keys escrowed \(1 prompt data keys, 1 TOTP keys, 0 tenant key versions\)/,
    );
    const totpEscrow = await applianceA.appliance.database.sequelize.query<{ username: string }>(
      'SELECT u.username FROM totp_escrow e JOIN users u ON u.id = e.user_id',
      { type: QueryTypes.SELECT },
    );
    assert.deepEqual(
      totpEscrow.map((row) => row.username),
      [earlyTotpUser.username],
    );
    shares = Object.fromEntries(
      [...run.stdout.matchAll(/^\s+(alice|bob|carol)\s+(prs1-\S+)$/gm)].map((m) => [m[1], m[2]]),
    );
    assert.deepEqual(Object.keys(shares).sort(), ['alice', 'bob', 'carol']);

    // Neither the key nor a share is stored anywhere in the database.
    const content = fs.readFileSync(applianceA.appliance.config.databaseFile);
    for (const share of Object.values(shares)) {
      const shareHex = share.split('-')[2];
      assert.equal(content.includes(Buffer.from(shareHex, 'hex')), false);
    }
    const again = await appliancectl(
      ['recovery', 'init', '--custodian', 'x', '--custodian', 'y', '--threshold', '2'],
      envA,
    );
    assert.equal(again.code, exitCodes.usage);
    assert.match(again.stderr, /a recovery key already exists .* pass --replace/);
  });

  it('escrows a TOTP key at enrolment', async () => {
    totpUser = await enrolTotpUser('author');

    const escrowed = await applianceA.appliance.database.sequelize.query(
      'SELECT user_id FROM totp_escrow',
      { type: QueryTypes.SELECT },
    );
    assert.equal(escrowed.length, 2);
  });

  it('issues an OAuth token before the backup', async () => {
    const admin = await applianceA.admin();
    const registered = await admin.post('/oauth/clients', {
      name: 'drill-client',
      permissions: ['users:read'],
    });
    assert.equal(registered.status, 201, JSON.stringify(registered.body));
    oauthClient = { ...(registered.body as { clientId: string; clientSecret: string }), kid: '' };

    const token = await requestClientToken(applianceA.anonymous());
    assert.equal(token.status, 200, JSON.stringify(token.body));
    oauthClient.kid = String(decodeProtectedHeader(token.body.access_token as string).kid);
  });

  it('escrows new prompts, then backs up', async () => {
    const admin = await applianceA.admin();
    const created = await admin.post('/prompts', {
      title: `T ${markers[1]}`,
      body: `B ${markers[1]}`,
    });
    assert.equal(created.status, 201);
    promptIds.push(created.body.id);

    // The vault escrows a new prompt's data key in its create transaction,
    // so escrow-sync finds nothing left to do.
    const escrowed = await applianceA.appliance.database.sequelize.query(
      'SELECT prompt_id FROM recovery_escrow WHERE prompt_id = :id',
      { type: QueryTypes.SELECT, replacements: { id: created.body.id } },
    );
    assert.equal(escrowed.length, 1);

    // A prompt of an appliance-keyed project: its data key is under the
    // project's tenant key, and the tenant key is escrowed instead.
    const project = await admin.post('/projects', { name: 'Drill', keyMode: 'appliance' });
    assert.equal(project.status, 201, JSON.stringify(project.body));
    const inProject = await admin.post('/prompts', {
      title: 'In project',
      body: `B ${markers[1]} project`,
      projectId: project.body.id,
    });
    assert.equal(inProject.status, 201, JSON.stringify(inProject.body));
    projectPromptId = inProject.body.id;
    const tenantEscrow = await applianceA.appliance.database.sequelize.query(
      'SELECT version FROM tenant_key_escrow WHERE project_id = :id',
      { type: QueryTypes.SELECT, replacements: { id: project.body.id } },
    );
    assert.equal(tenantEscrow.length, 1);

    const sync = await appliancectl(['recovery', 'escrow-sync'], envA);
    assert.equal(sync.code, exitCodes.ok, sync.stderr);
    assert.match(sync.stdout, /^0 keys escrowed/m);

    const backup = await appliancectl(['backup', 'create', backupFile], envA);
    assert.equal(backup.code, exitCodes.ok, backup.stderr);
    const manifest = JSON.parse(fs.readFileSync(`${backupFile}.manifest.json`, 'utf8'));
    assert.equal(
      manifest.database.sha256,
      crypto.createHash('sha256').update(fs.readFileSync(backupFile)).digest('hex'),
    );
    assert.equal(manifest.unescrowedDataKeys, 0);
    for (const marker of markers) assert.equal(fs.readFileSync(backupFile).includes(marker), false);
    assert.match(manifest.recovery.fingerprint, /^[0-9a-f]{64}$/);

    // VACUUM INTO keeps the SQLCipher key, so the backup file is encrypted too.
    assert.equal(isPlainSqlite(backupFile), false);
    assert.equal(manifest.databaseKey.wrapped.masterKeyUri, applianceA.appliance.keys.masterKeyUri);
    assert.match(manifest.databaseKey.escrow, /^[A-Za-z0-9+/]+=*$/);

    const actions = await applianceA.appliance.database.sequelize.query<{ action: string }>(
      `SELECT action FROM audit_records WHERE action LIKE 'recovery.%' OR action = 'backup.create' ORDER BY seq`,
      { type: QueryTypes.SELECT },
    );
    assert.deepEqual(
      actions.map((row) => row.action),
      ['recovery.init', 'recovery.escrow', 'recovery.escrow', 'backup.create'],
    );
  });

  it('restore rejects bad input, exit 2', async () => {
    const otherShares = await splitRecoveryKey(RecoveryKey.generate().bytes(), 3, 2);
    const tampered = path.join(work, 'tampered.sqlite');
    const bytes = fs.readFileSync(backupFile);
    bytes[bytes.length - 100] ^= 0xff;
    fs.writeFileSync(tampered, bytes);
    fs.copyFileSync(`${backupFile}.manifest.json`, `${tampered}.manifest.json`);

    const alteredEscrow = path.join(work, 'altered-escrow.sqlite');
    fs.copyFileSync(backupFile, alteredEscrow);
    const manifest = JSON.parse(fs.readFileSync(`${backupFile}.manifest.json`, 'utf8'));
    const escrow = Buffer.from(manifest.databaseKey.escrow, 'base64');
    escrow[escrow.length - 1] ^= 0xff;
    manifest.databaseKey.escrow = escrow.toString('base64');
    fs.writeFileSync(`${alteredEscrow}.manifest.json`, JSON.stringify(manifest));

    const cases: [string, string, string[], RegExp][] = [
      ['one share', backupFile, [shares.alice], /2 shares are needed .* 1 given/],
      [
        'a mistyped share',
        backupFile,
        [shares.alice, mistype(shares.bob)],
        /--share number 2 fails its checksum/,
      ],
      [
        'a share of another key',
        backupFile,
        [shares.alice, otherShares[0]],
        /--share number 2 belongs to recovery key/,
      ],
      ['a tampered backup', tampered, [shares.alice, shares.bob], /fails its checksum/],
      [
        'an altered database key escrow',
        alteredEscrow,
        [shares.alice, shares.bob],
        /escrow of the database key in the manifest fails to open/,
      ],
    ];
    for (const [name, file, given, message] of cases) {
      const machine = freshMachine();
      const run = await appliancectl(
        ['recovery', 'restore', '--backup', file, ...given.flatMap((s) => ['--share', s])],
        machine.env,
      );
      assert.equal(run.code, exitCodes.usage, `${name}: ${run.stderr}`);
      assert.match(run.stderr, message, name);
      assert.deepEqual(fs.readdirSync(machine.dataDir), [], `${name}: nothing written`);
    }
  });

  // The restore runs in this process through restoreBackup, the function
  // behind `appliancectl recovery restore`: the SoftHSM module of a process
  // lists its tokens once, so appliance B started here would not see a token
  // that an appliancectl child process made.
  it('restore onto fresh token serves prompts', async () => {
    const machine = freshMachine();
    config = loadConfig(machine.env);
    const result = await restoreBackup(config, {
      backupFile,
      shares: [shares.carol, shares.alice],
      operator: 'cli:test',
    });
    // Two prompt data keys and the tenant key of the project.
    assert.equal(result.restoredKeys, 3);
    assert.equal(result.restoredDataKeys, 2);
    assert.equal(result.restoredTenantKeys, 1);
    assert.deepEqual(
      fs.readdirSync(machine.dataDir).filter((name) => name.includes('sqlite')),
      ['appliance.sqlite'],
    );
    assert.equal(isPlainSqlite(config.databaseFile), false);

    applianceB = await startAppliance(config, { port: 0, search: false });
    const client = new ApiClient(
      applianceB.url,
      fs.readFileSync(path.join(config.tlsDir, 'appliance.crt')),
    );
    const login = await client.post('/auth/login', {
      username: 'admin',
      password: adminTestPassword,
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));

    for (const [index, id] of promptIds.entries()) {
      const prompt = await client.get(`/prompts/${id}`);
      assert.equal(prompt.status, 200, JSON.stringify(prompt.body));
      assert.equal(prompt.body.title, `T ${markers[index]}`);
      assert.ok(JSON.stringify(prompt.body).includes(`B ${markers[index]}`));
    }

    const inProject = await client.get(`/prompts/${projectPromptId}`);
    assert.equal(inProject.status, 200, JSON.stringify(inProject.body));
    assert.equal(inProject.body.version.body, `B ${markers[1]} project`);

    // Every data key is now wrapped under token B's master key, not A's.
    const uris = await applianceB.database.sequelize.query<{ master_key_uri: string }>(
      'SELECT DISTINCT master_key_uri FROM prompt_data_keys',
      { type: QueryTypes.SELECT },
    );
    assert.deepEqual(
      uris.map((row) => row.master_key_uri),
      [applianceB.keys.masterKeyUri],
    );
    assert.notEqual(applianceB.keys.masterKeyUri, applianceA.appliance.keys.masterKeyUri);
    const databaseKey = readDatabaseKeyRecord(databaseKeyFileOf(config.secretsDir));
    assert.equal(databaseKey?.masterKeyUri, applianceB.keys.masterKeyUri);

    const restore = await applianceB.database.sequelize.query<{ reason: string }>(
      `SELECT reason FROM audit_records WHERE action = 'recovery.restore'`,
      { type: QueryTypes.SELECT },
    );
    assert.equal(restore.length, 1);
    assert.match(restore[0].reason, /sealed old chain head seq \d+ hash [0-9a-f]{64}/);

    // Both TOTP keys were rewrapped from their escrow, so token B checks oathtool codes:
    // the one escrowed at enrolment and the one that `recovery init` escrowed.
    const totpStep = await signInWithTotp(totpUser);
    assert.equal(totpStep.status, 200, JSON.stringify(totpStep.body));
    const earlyStep = await signInWithTotp(earlyTotpUser);
    assert.equal(earlyStep.status, 200, JSON.stringify(earlyStep.body));

    // Token A's OAuth signing key is dropped, so B signs with a new key pair of its own.
    const anonymousB = new ApiClient(
      applianceB.url,
      fs.readFileSync(path.join(config.tlsDir, 'appliance.crt')),
    );
    const token = await requestClientToken(anonymousB);
    assert.equal(token.status, 200, JSON.stringify(token.body));
    const jwks = await anonymousB.get('/oauth/jwks');
    const { protectedHeader } = await jwtVerify(
      token.body.access_token as string,
      createLocalJWKSet(jwks.body),
      { algorithms: ['EdDSA'] },
    );
    assert.notEqual(protectedHeader.kid, oauthClient.kid);
    assert.equal(jwks.body.keys.length, 1);

    // verify-audit checks the old records' links up to the sealed head and
    // token B's HMACs from the recovery.restore record on (docs/recovery.md).
    const verification = await applianceB.audit.verify();
    // ok covers the old token's checkpoints too, checked with its stored public key.
    assert.equal(verification.ok, true, JSON.stringify(verification.firstBroken));

    // A seal that names another head breaks the chain at the sealed seq.
    const [state] = await applianceB.database.sequelize.query<{ value: string }>(
      `SELECT value FROM appliance_state WHERE key = 'recovery.restored'`,
      { type: QueryTypes.SELECT },
    );
    const seal = JSON.parse(state.value) as { seq: number; hash: string };
    const tampered = JSON.stringify({
      ...seal,
      hash: seal.hash.replace(/^./, (c) => (c === '0' ? '1' : '0')),
    });
    await applianceB.database.sequelize.query(
      `UPDATE appliance_state SET value = :value WHERE key = 'recovery.restored'`,
      { replacements: { value: tampered } },
    );
    const broken = await applianceB.audit.verify();
    assert.equal(broken.ok, false);
    assert.equal(broken.firstBroken?.seq, seal.seq);
    await applianceB.database.sequelize.query(
      `UPDATE appliance_state SET value = :value WHERE key = 'recovery.restored'`,
      { replacements: { value: state.value } },
    );

    await assert.rejects(
      restoreBackup(config, {
        backupFile,
        shares: [shares.alice, shares.bob],
        operator: 'cli:test',
      }),
      (error: unknown) =>
        error instanceof RecoveryInputError &&
        /already exists; restore only into an empty/.test(error.message),
    );
  });
});
