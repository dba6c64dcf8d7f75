import type { KeyProvider } from '../../hsm/key-provider';
import type { Database } from '../platform/database';
import { readDatabaseKeyRecord, rewrapDatabaseKey } from '../platform/database-key';
import { logger } from '../platform/logger';
import type { KeyInventoryItem } from './inventory';

/**
 * Builds the inventory row of the SQLCipher database key, or returns
 * undefined for a plain database. The key has one version; it moves between
 * master key versions with each rotation.
 */
export function databaseKeyItem(database: Database): KeyInventoryItem | undefined {
  if (!database.keyFile) return undefined;
  const record = readDatabaseKeyRecord(database.keyFile);
  if (!record) return undefined;

  return {
    keyClass: 'database',
    location: `file:${database.keyFile}`,
    algorithm: 'AES-256 SQLCipher 4 raw key (pages in AES-256-CBC with HMAC-SHA512)',
    keyVersion: 1,
    created: { createdAt: record.createdAt, source: 'key-file' },
    state: 'active',
    dependents: { type: 'database-file', count: 1 },
    masterKeyUri: record.masterKeyUri,
    lastRotated: null,
    nextRotation: null,
  };
}

/**
 * Moves the database key to the master key version of a finishing rotation.
 * The key file is replaced atomically before the rotation commits, so a
 * rotation that then fails to commit leaves the key under the new version,
 * which stays on the token and opens it.
 */
export function rewrapDatabaseKeyTo(
  database: Database,
  keys: KeyProvider,
  rotation: { id: string; keyUri: string; toVersion: number },
): void {
  if (!database.keyFile) return;
  const moved = rewrapDatabaseKey(keys, database.keyFile, {
    uri: rotation.keyUri,
    version: rotation.toVersion,
  });
  if (moved) logger.info({ rotationId: rotation.id }, 'database key rewrapped');
}

/** Returns 1 when the database key is wrapped under a master key version below `version`, else 0. */
export function countDatabaseKeyBelow(database: Database, version: number): number {
  if (!database.keyFile) return 0;
  const record = readDatabaseKeyRecord(database.keyFile);
  return record && record.masterKeyVersion < version ? 1 : 0;
}
