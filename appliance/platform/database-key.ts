import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import type { KeyProvider } from '../../hsm/key-provider';
import { databaseKeyLength } from './database';

/** Name of the wrapped database key file in the secrets directory. */
export const databaseKeyFileName = 'database-key.json';

export const databaseKeyFormat = 'prompt-bank-database-key';

/** PKCS#11 mechanism that wraps the database key, the same as for prompt data keys. */
const databaseKeyWrapMechanism = 'CKM_AES_KEY_WRAP';

/**
 * The stored form of the SQLCipher key: wrapped by one master key version
 * on the token, never in clear. JSON in `<secrets>/database-key.json`, 0600.
 */
export interface DatabaseKeyRecord {
  format: typeof databaseKeyFormat;
  version: 1;
  /** Base64 of the CKM_AES_KEY_WRAP output (40 bytes for the 32-byte key). */
  wrappedKey: string;
  wrapMechanism: string;
  /** RFC 7512 PKCS#11 URI of the master key version that wraps the key. */
  masterKeyUri: string;
  masterKeyVersion: number;
  createdAt: string;
  wrappedAt: string;
}

/** The master key version that wraps (or is to wrap) the database key. */
export interface WrappingKey {
  uri: string;
  version: number;
}

export function databaseKeyFileOf(secretsDir: string): string {
  return path.join(secretsDir, databaseKeyFileName);
}

/** Reads the key file; returns undefined when it does not exist. Throws when it is malformed. */
export function readDatabaseKeyRecord(keyFile: string): DatabaseKeyRecord | undefined {
  if (!fs.existsSync(keyFile)) return undefined;

  let record: DatabaseKeyRecord;
  try {
    record = JSON.parse(fs.readFileSync(keyFile, 'utf8')) as DatabaseKeyRecord;
  } catch {
    throw new Error(
      `the database key file ${keyFile} is not valid JSON; restore it from the copy made with the database`,
    );
  }
  if (
    record.format !== databaseKeyFormat ||
    record.version !== 1 ||
    typeof record.wrappedKey !== 'string' ||
    typeof record.masterKeyUri !== 'string' ||
    !Number.isInteger(record.masterKeyVersion)
  ) {
    throw new Error(
      `the database key file ${keyFile} is not a version 1 ${databaseKeyFormat} record; restore it from the copy made with the database`,
    );
  }
  return record;
}

/**
 * Writes the key file atomically: a temporary file (0600) is fsynced and
 * renamed over the old one, and the folder is fsynced, so a crash leaves
 * either the old or the new record.
 */
export function writeDatabaseKeyRecord(keyFile: string, record: DatabaseKeyRecord): void {
  fs.mkdirSync(path.dirname(keyFile), { recursive: true, mode: 0o700 });
  const partial = `${keyFile}.partial-${crypto.randomBytes(4).toString('hex')}`;
  try {
    const fd = fs.openSync(partial, 'wx', 0o600);
    try {
      fs.writeSync(fd, `${JSON.stringify(record, null, 2)}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(partial, keyFile);
    fsyncFolder(path.dirname(keyFile));
  } finally {
    fs.rmSync(partial, { force: true });
  }
}

/** Wraps `key` under `wrapping` inside the token and returns the record to store. */
export function wrapDatabaseKey(
  keys: KeyProvider,
  key: Buffer,
  wrapping: WrappingKey,
  createdAt = new Date().toISOString(),
): DatabaseKeyRecord {
  return {
    format: databaseKeyFormat,
    version: 1,
    wrappedKey: keys.wrapDataKey(key, wrapping.uri).toString('base64'),
    wrapMechanism: databaseKeyWrapMechanism,
    masterKeyUri: wrapping.uri,
    masterKeyVersion: wrapping.version,
    createdAt,
    wrappedAt: new Date().toISOString(),
  };
}

/** Generates a new 32-byte database key, stores it wrapped and returns it; the caller zeroes it. */
export function createDatabaseKey(
  keys: KeyProvider,
  keyFile: string,
  wrapping: WrappingKey,
): Buffer {
  const key = crypto.randomBytes(databaseKeyLength);
  writeDatabaseKeyRecord(keyFile, wrapDatabaseKey(keys, key, wrapping));
  return key;
}

/** Unwraps the stored key inside the token; throws HsmError when the token cannot. */
export function unwrapDatabaseKey(keys: KeyProvider, record: DatabaseKeyRecord): Buffer {
  return keys.unwrapDataKey(Buffer.from(record.wrappedKey, 'base64'), record.masterKeyUri);
}

/**
 * Moves the stored database key to another master key version, unwrapping
 * and wrapping inside the token so the key never enters this process.
 * Does nothing when the key is already under `to`. Returns true when moved.
 */
export function rewrapDatabaseKey(keys: KeyProvider, keyFile: string, to: WrappingKey): boolean {
  const record = readDatabaseKeyRecord(keyFile);
  if (!record) throw new Error(`the database key file ${keyFile} is missing`);
  if (record.masterKeyUri === to.uri && record.masterKeyVersion === to.version) return false;

  const rewrapped = keys.rewrapDataKey(
    Buffer.from(record.wrappedKey, 'base64'),
    record.masterKeyUri,
    to.uri,
  );
  writeDatabaseKeyRecord(keyFile, {
    ...record,
    wrappedKey: rewrapped.toString('base64'),
    masterKeyUri: to.uri,
    masterKeyVersion: to.version,
    wrappedAt: new Date().toISOString(),
  });
  return true;
}

export function fsyncFolder(folder: string): void {
  const fd = fs.openSync(folder, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
