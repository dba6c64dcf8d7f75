import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import net from 'node:net';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { QueryTypes } from 'sequelize';
import sqlite3 from 'sqlite3';

import { exitCodes } from '../cli/exit-codes';
import type { KeyInventoryItem } from '../keys/inventory';
import { runAppliancectl } from '../testing/appliancectl';
import { sharedTokenEnv, startTestAppliance, type TestAppliance } from '../testing/harness';
import { repoRoot } from './config';
import { openDatabase } from './database';
import { DatabaseStartError, isPlainSqlite, openApplianceDatabase } from './database-encryption';
import {
  databaseKeyFileOf,
  readDatabaseKeyRecord,
  wrapDatabaseKey,
  writeDatabaseKeyRecord,
} from './database-key';

const execFileAsync = promisify(execFile);

/** Runs the sqlite3 command-line tool (Debian package sqlite3) and returns its exit code and output. */
async function sqliteCli(file: string, sql: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('sqlite3', [file, sql]);
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? 1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago; the start fails before it listens. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Reads `sql` with the plain node sqlite3 module, which has no SQLCipher. */
function readWithPlainSqlite3(file: string, sql: string): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, sqlite3.OPEN_READONLY, (openError) => {
      if (openError) return reject(openError);
      db.all(sql, (error, rows) => {
        db.close();
        if (error) reject(error);
        else resolve(rows);
      });
    });
  });
}

describe('SQLCipher database encryption @integration', function () {
  this.timeout(120_000);

  let test: TestAppliance;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'database-encryption-'));

  /** Config of another appliance data directory that shares the test token. */
  function otherDataDir(name: string) {
    const dataDir = path.join(work, name);
    fs.mkdirSync(dataDir, { recursive: true });
    return {
      dataDir,
      databaseFile: path.join(dataDir, 'appliance.sqlite'),
      secretsDir: path.join(dataDir, 'secrets'),
    };
  }

  before(async function () {
    test = await startTestAppliance();
  });

  after(async function () {
    await test?.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('stores the file encrypted', async function () {
    const admin = await test.admin();
    const marker = `marker-${crypto.randomUUID()}`;
    const created = await admin.post('/prompts', { title: marker, body: marker });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await test.appliance.database.sequelize.query('PRAGMA wal_checkpoint(TRUNCATE)');

    const file = test.appliance.config.databaseFile;
    const header = fs.readFileSync(file).subarray(0, 16).toString('latin1');
    assert.notEqual(header, 'SQLite format 3\0');
    assert.equal(fs.readFileSync(file).includes(marker), false);

    const cli = await sqliteCli(file, 'SELECT COUNT(*) FROM prompts');
    assert.notEqual(cli.code, 0);
    assert.match(cli.output, /file is not a database/);
    await assert.rejects(
      readWithPlainSqlite3(file, 'SELECT COUNT(*) FROM prompts'),
      /SQLITE_NOTADB: file is not a database/,
    );
  });

  it('stores the key only wrapped', async function () {
    const keyFile = databaseKeyFileOf(test.appliance.config.secretsDir);
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);

    const record = readDatabaseKeyRecord(keyFile)!;
    assert.equal(record.masterKeyUri, test.appliance.keys.masterKeyUri);
    assert.equal(record.masterKeyVersion, 1);
    assert.equal(record.wrapMechanism, 'CKM_AES_KEY_WRAP');
    // CKM_AES_KEY_WRAP adds 8 bytes to the 32-byte key.
    assert.equal(Buffer.from(record.wrappedKey, 'base64').length, 40);
  });

  it('opens again with the key', async function () {
    const reopened = await openApplianceDatabase(test.appliance.config, test.appliance.keys);
    try {
      const rows = await reopened.sequelize.query<{ count: number }>(
        'SELECT COUNT(*) AS count FROM users',
        { type: QueryTypes.SELECT },
      );
      assert.ok(rows[0].count >= 1);
    } finally {
      await reopened.close();
    }
  });

  it('lists the key in GET /keys', async function () {
    const admin = await test.admin();
    const response = await admin.get('/keys');
    assert.equal(response.status, 200, JSON.stringify(response.body));

    const rows = (response.body.items as KeyInventoryItem[]).filter(
      (item) => item.keyClass === 'database',
    );
    assert.equal(rows.length, 1);
    assert.equal(rows[0].masterKeyUri, test.appliance.keys.masterKeyUri);
    assert.equal(rows[0].state, 'active');
    assert.equal(rows[0].created?.source, 'key-file');
  });

  it('converts a plain database', async function () {
    const dir = otherDataDir('plain');
    const plain = await openDatabase(dir.databaseFile);
    await plain.sequelize.query('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)');
    await plain.sequelize.query("INSERT INTO notes (body) VALUES ('kept'), ('also kept')");
    await plain.sequelize.query('PRAGMA user_version = 7');
    await plain.close();
    assert.equal(isPlainSqlite(dir.databaseFile), true);

    const database = await openApplianceDatabase(dir, test.appliance.keys);
    try {
      const rows = await database.sequelize.query<{ body: string }>(
        'SELECT body FROM notes ORDER BY id',
        { type: QueryTypes.SELECT },
      );
      assert.deepEqual(
        rows.map((row) => row.body),
        ['kept', 'also kept'],
      );
      const [{ user_version: userVersion }] = await database.sequelize.query<{
        user_version: number;
      }>('PRAGMA user_version', { type: QueryTypes.SELECT });
      assert.equal(userVersion, 7);
    } finally {
      await database.close();
    }

    assert.equal(isPlainSqlite(dir.databaseFile), false);
    assert.deepEqual(fs.readdirSync(dir.dataDir).sort(), ['appliance.sqlite', 'secrets']);
  });

  it('crash in conversion keeps plain file', async function () {
    const dir = otherDataDir('crash');
    const plain = await openDatabase(dir.databaseFile);
    await plain.sequelize.query('CREATE TABLE filler (id INTEGER PRIMARY KEY, data BLOB)');
    // About 64 MB, so the export runs long enough to be killed halfway.
    await plain.sequelize.query(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 16000)
       INSERT INTO filler (data) SELECT randomblob(4000) FROM n`,
    );
    await plain.close();

    const script = path.join(work, 'convert.mts');
    fs.writeFileSync(
      script,
      `import { encryptPlainDatabase } from ${JSON.stringify(path.join(repoRoot, 'appliance/platform/database-encryption.ts'))};\n` +
        `await encryptPlainDatabase(process.env.PLAIN_FILE, Buffer.from(process.env.TEST_KEY_HEX, 'hex'));\n`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: repoRoot,
      env: {
        ...process.env,
        LOG_LEVEL: 'warn',
        PLAIN_FILE: dir.databaseFile,
        TEST_KEY_HEX: crypto.randomBytes(32).toString('hex'),
      },
      stdio: 'ignore',
    });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));

    const encrypting = `${dir.databaseFile}.encrypting`;
    for (;;) {
      if (child.exitCode !== null) break;
      if (fs.existsSync(encrypting) && fs.statSync(encrypting).size > 1024 * 1024) {
        child.kill('SIGKILL');
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await exited;
    assert.equal(child.signalCode, 'SIGKILL', 'the conversion finished before it could be killed');

    // The plain file still contains the same rows; only its journal mode may have changed.
    assert.equal(isPlainSqlite(dir.databaseFile), true);
    const check = await sqliteCli(
      dir.databaseFile,
      'PRAGMA integrity_check; SELECT COUNT(*) FROM filler;',
    );
    assert.equal(check.code, 0, check.output);
    assert.equal(check.output, 'ok\n16000\n');

    const database = await openApplianceDatabase(dir, test.appliance.keys);
    try {
      const rows = await database.sequelize.query<{ count: number }>(
        'SELECT COUNT(*) AS count FROM filler',
        { type: QueryTypes.SELECT },
      );
      assert.equal(rows[0].count, 16000);
    } finally {
      await database.close();
    }
    assert.equal(fs.existsSync(encrypting), false);
    assert.equal(isPlainSqlite(dir.databaseFile), false);
  });

  it('wrong key fails closed at open', async function () {
    const dir = otherDataDir('wrong-key');
    await (await openApplianceDatabase(dir, test.appliance.keys)).close();
    const keyFile = databaseKeyFileOf(dir.secretsDir);
    const original = readDatabaseKeyRecord(keyFile)!;
    writeDatabaseKeyRecord(
      keyFile,
      wrapDatabaseKey(test.appliance.keys, crypto.randomBytes(32), {
        uri: original.masterKeyUri,
        version: original.masterKeyVersion,
      }),
    );

    await assert.rejects(
      openApplianceDatabase(dir, test.appliance.keys),
      (error: unknown) =>
        error instanceof DatabaseStartError &&
        error.message.includes(`The database key in ${keyFile} does not open ${dir.databaseFile}`),
    );
  });

  it('missing key file fails closed', async function () {
    const dir = otherDataDir('missing-key');
    await (await openApplianceDatabase(dir, test.appliance.keys)).close();
    fs.rmSync(databaseKeyFileOf(dir.secretsDir));

    await assert.rejects(
      openApplianceDatabase(dir, test.appliance.keys),
      (error: unknown) =>
        error instanceof DatabaseStartError &&
        /is encrypted but its database key file/.test(error.message),
    );
    assert.equal(isPlainSqlite(dir.databaseFile), false);
  });

  it('unknown wrapping key fails closed', async function () {
    const dir = otherDataDir('no-wrapping-key');
    await (await openApplianceDatabase(dir, test.appliance.keys)).close();
    const keyFile = databaseKeyFileOf(dir.secretsDir);
    const record = readDatabaseKeyRecord(keyFile)!;
    writeDatabaseKeyRecord(keyFile, {
      ...record,
      masterKeyUri: 'pkcs11:token=appliance;object=vault-master-v99;id=%01;type=secret-key',
    });

    await assert.rejects(
      openApplianceDatabase(dir, test.appliance.keys),
      (error: unknown) =>
        error instanceof DatabaseStartError &&
        /The HSM could not unwrap the database key/.test(error.message),
    );
  });

  it('start refuses a wrong key', async function () {
    const dir = otherDataDir('start-wrong-key');
    await (await openApplianceDatabase(dir, test.appliance.keys)).close();
    writeDatabaseKeyRecord(
      databaseKeyFileOf(dir.secretsDir),
      wrapDatabaseKey(test.appliance.keys, crypto.randomBytes(32), {
        uri: test.appliance.keys.masterKeyUri,
        version: 1,
      }),
    );

    const run = await runAppliancectl(['start'], {
      ...sharedTokenEnv(),
      APPLIANCE_DATA_DIR: dir.dataDir,
      APPLIANCE_PORT: String(await freePort()),
      SEARCH_URL: 'http://127.0.0.1:9',
    });
    assert.equal(run.code, exitCodes.unavailable, run.stderr);
    assert.match(run.stderr, /the appliance did not start: The database key in .* does not open/);
  });

  it('start refuses without the HSM', async function () {
    const dir = otherDataDir('start-no-hsm');
    await (await openApplianceDatabase(dir, test.appliance.keys)).close();
    const before = fs.readFileSync(dir.databaseFile);

    const run = await runAppliancectl(['start'], {
      ...sharedTokenEnv(),
      APPLIANCE_DATA_DIR: dir.dataDir,
      APPLIANCE_PORT: String(await freePort()),
      SEARCH_URL: 'http://127.0.0.1:9',
      PKCS11_MODULE: path.join(work, 'missing-pkcs11-module.so'),
    });
    assert.notEqual(run.code, exitCodes.ok);
    assert.match(run.stderr, /missing-pkcs11-module\.so/);
    assert.ok(fs.readFileSync(dir.databaseFile).equals(before));
  });

  it('rotation rewraps the key', async function () {
    const admin = await test.admin();
    const started = await admin.post('/keys/rotate');
    assert.equal(started.status, 202, JSON.stringify(started.body));

    let state = started.body.state as string;
    for (let attempt = 0; attempt < 200 && state === 'running'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      state = (await admin.get(`/keys/rotations/${started.body.id}`)).body.state;
    }
    assert.equal(state, 'completed');

    const record = readDatabaseKeyRecord(databaseKeyFileOf(test.appliance.config.secretsDir))!;
    assert.equal(record.masterKeyVersion, started.body.toVersion);
    assert.equal(record.masterKeyUri, started.body.keyUri);

    // A new connection unwraps the key under the new master key version.
    const reopened = await openApplianceDatabase(test.appliance.config, test.appliance.keys);
    await reopened.close();
  });
});
