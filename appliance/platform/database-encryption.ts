import fs from 'node:fs';
import path from 'node:path';

import { QueryTypes } from 'sequelize';

import { HsmError } from '../../hsm/errors';
import type { KeyProvider } from '../../hsm/key-provider';
import type { ApplianceConfig } from './config';
import { openDatabase, type Database } from './database';
import {
  createDatabaseKey,
  databaseKeyFileOf,
  fsyncFolder,
  readDatabaseKeyRecord,
  unwrapDatabaseKey,
  type WrappingKey,
} from './database-key';
import { logger } from './logger';

/** First 16 bytes of every plain SQLite 3 file; a SQLCipher file starts with random salt instead. */
const plainHeader = Buffer.from('SQLite format 3\0', 'latin1');

/** Thrown when the appliance database cannot be opened; the appliance does not start. */
export class DatabaseStartError extends Error {
  override readonly name = 'DatabaseStartError';
}

/**
 * Opens the appliance database encrypted with SQLCipher. At the first start
 * it generates the 32-byte key and stores it only wrapped by the HSM master
 * key. A plain SQLite file left by an earlier version is converted first
 * (see encryptPlainDatabase()). Throws DatabaseStartError when the HSM
 * cannot unwrap the key, the key file is missing for an encrypted file, or
 * the key does not open the file.
 */
export async function openApplianceDatabase(
  config: Pick<ApplianceConfig, 'databaseFile' | 'secretsDir'>,
  keys: KeyProvider,
): Promise<Database> {
  const file = config.databaseFile;
  const keyFile = databaseKeyFileOf(config.secretsDir);
  const state = fileState(file);
  let record = readDatabaseKeyRecord(keyFile);

  if (!record && state === 'encrypted') {
    throw new DatabaseStartError(
      `${file} is encrypted but its database key file ${keyFile} is missing, so the appliance cannot open it. Restore ${keyFile} from the copy of the secrets directory, or restore the database from a backup with \`appliancectl recovery restore\`.`,
    );
  }

  let key: Buffer;
  try {
    if (record) {
      key = unwrapDatabaseKey(keys, record);
    } else {
      const wrapping = state === 'plain' ? await activeWrappingKey(file, keys) : firstVersion(keys);
      key = createDatabaseKey(keys, keyFile, wrapping);
      record = readDatabaseKeyRecord(keyFile);
      logger.info(
        { keyFile, masterKeyVersion: wrapping.version },
        'database key generated and stored wrapped by the HSM',
      );
    }
  } catch (error) {
    if (error instanceof HsmError) {
      throw new DatabaseStartError(
        `The HSM could not unwrap the database key in ${keyFile} (${error.code}: ${error.message}), so the appliance does not start. Make the token available and start again.`,
        { cause: error },
      );
    }
    throw error;
  }

  try {
    if (state === 'plain') await encryptPlainDatabase(file, key);
    return await openDatabase(file, { key, keyFile });
  } catch (error) {
    if (error instanceof Error && error.name === 'DatabaseKeyError') {
      throw new DatabaseStartError(error.message, { cause: error });
    }
    throw error;
  } finally {
    key.fill(0);
  }
}

type FileState = 'missing' | 'plain' | 'encrypted';

function fileState(file: string): FileState {
  if (!fs.existsSync(file) || fs.statSync(file).size === 0) return 'missing';
  return isPlainSqlite(file) ? 'plain' : 'encrypted';
}

/** Returns true when `file` starts with the plain SQLite 3 header. */
export function isPlainSqlite(file: string): boolean {
  const header = Buffer.alloc(plainHeader.length);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, header, 0, header.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  return header.equals(plainHeader);
}

/** Version 1 is the master key that token set-up made; key_versions records it under keys.masterKeyUri. */
function firstVersion(keys: KeyProvider): WrappingKey {
  return { uri: keys.masterKeyUri, version: 1 };
}

/** Reads the active master key version from a plain database that predates encryption. */
async function activeWrappingKey(file: string, keys: KeyProvider): Promise<WrappingKey> {
  const plain = await openDatabase(file);
  try {
    const tables = await plain.sequelize.query<{ name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'key_versions'",
      { type: QueryTypes.SELECT },
    );
    if (!tables.length) return firstVersion(keys);

    const rows = await plain.sequelize.query<{ version: number; key_uri: string }>(
      "SELECT version, key_uri FROM key_versions WHERE state = 'active' ORDER BY version DESC LIMIT 1",
      { type: QueryTypes.SELECT },
    );
    return rows.length ? { uri: rows[0].key_uri, version: rows[0].version } : firstVersion(keys);
  } finally {
    await plain.close();
  }
}

/**
 * Converts a plain SQLite file into a SQLCipher file under `key`. The plain
 * file is checkpointed and taken out of WAL mode, copied with
 * sqlcipher_export() into `<file>.encrypting`, which is fsynced and renamed
 * over the plain file. Until that rename the plain file is untouched apart
 * from its journal mode, so a crash leaves it readable and the next start
 * converts again.
 */
export async function encryptPlainDatabase(file: string, key: Buffer): Promise<void> {
  const encrypting = `${file}.encrypting`;
  removeWithSidecars(encrypting);

  const plain = await openDatabase(file);
  try {
    await plain.sequelize.query('PRAGMA wal_checkpoint(TRUNCATE)');
    await plain.sequelize.query('PRAGMA journal_mode = DELETE');

    const [{ user_version: userVersion }] = await plain.sequelize.query<{ user_version: number }>(
      'PRAGMA user_version',
      { type: QueryTypes.SELECT },
    );
    await attachEncrypted(plain, encrypting, key);
    await plain.sequelize.query("SELECT sqlcipher_export('encrypted')");
    await plain.sequelize.query(`PRAGMA encrypted.user_version = ${Number(userVersion)}`);
    await plain.sequelize.query('DETACH DATABASE encrypted');
  } catch (error) {
    await plain.close();
    removeWithSidecars(encrypting);
    throw error;
  }
  await plain.close();

  const fd = fs.openSync(encrypting, 'r+');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(encrypting, 0o600);

  for (const suffix of ['-wal', '-shm']) fs.rmSync(`${file}${suffix}`, { force: true });
  fs.renameSync(encrypting, file);
  fsyncFolder(path.dirname(file));
  logger.info({ file }, 'plain database converted to SQLCipher');
}

/**
 * Attaches `file` as the SQLCipher database `encrypted`. The statement contains
 * the key, so it is not logged, and a failure is rethrown without the
 * Sequelize error that carries the statement text.
 */
async function attachEncrypted(plain: Database, file: string, key: Buffer): Promise<void> {
  try {
    await plain.sequelize.query(
      `ATTACH DATABASE :file AS encrypted KEY "x'${key.toString('hex')}'"`,
      {
        replacements: { file },
        logging: false,
      },
    );
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`attaching the encrypted copy ${file} failed: ${reason}`);
  }
}

function removeWithSidecars(file: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) {
    fs.rmSync(`${file}${suffix}`, { force: true });
  }
}
