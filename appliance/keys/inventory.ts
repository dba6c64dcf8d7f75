import { QueryTypes } from 'sequelize';

import { masterKeyVersionLabel } from '../../hsm/appliance-keys';
import type { Database } from '../platform/database';
import { databaseKeyItem } from './database-key-item';
import { readKeyCreation, type KeyClass, type KeyCreation, type TokenKey } from './key-records';
import { listMasterKeyVersions, type MasterKeyVersion } from './master-key-versions';
import { masterWrappedTables } from './master-wrapped-keys';

/** Location of the wrapped data keys, as the inventory names it. */
export const dataKeyLocation = 'sqlite:prompt_data_keys';

/**
 * State of a key. `active` keys protect new data, and `decrypt-only` keys
 * only open data protected before a newer version. `retired` master key
 * versions are below the minimum decryption version and open nothing.
 * `destroyed` keys are gone from the token, so what depends on them cannot
 * be opened here. `revoked` tenant keys are on the customer token, but the
 * appliance is logged out of it until the customer restores access.
 */
export type KeyState = 'active' | 'decrypt-only' | 'retired' | 'destroyed' | 'revoked';

/** One row of the key inventory, shaped for the console. */
export interface KeyInventoryItem {
  keyClass: KeyClass;
  /** RFC 7512 PKCS#11 URI of a token key, or where wrapped data keys are stored. */
  location: string;
  /** CKA_LABEL of a token key. */
  label?: string;
  algorithm: string;
  keyVersion: number;
  /** Undefined for a master key that only stored data keys name. */
  created?: KeyCreation;
  state: KeyState;
  /** The objects this key protects and how many there are. */
  dependents: {
    type: 'data-key' | 'audit-record' | 'audit-checkpoint' | 'prompt' | 'database-file';
    count: number;
  };
  /**
   * For a master key version: the keys it wraps besides the prompt data keys
   * that `dependents` counts, by table (tenant keys in project_key_versions,
   * TOTP keys in user_totp, OAuth signing data keys in oauth_signing_keys).
   * The SQLCipher database key is its own inventory item.
   */
  alsoWraps?: Record<string, number>;
  /** For a data-key aggregate or an appliance tenant key: the master key version that wraps it. */
  masterKeyUri?: string;
  /** For a data-key aggregate: creation time of its newest data key. */
  lastCreatedAt?: string;
  /** For a tenant key: the project whose data keys it wraps. */
  projectId?: string;
  projectName?: string;
  /**
   * When a rotation generated the newest version of this key; null if it was
   * never rotated. KeyInventory.list() sets null where a builder left it out.
   */
  lastRotated?: string | null;
  /** Next scheduled rotation of this key (KEY_ROTATION_CRON, or TENANT_KEY_ROTATION_CRON for tenant keys); null when no schedule rotates it. */
  nextRotation?: string | null;
}

/** The rotation schedule as the inventory reports it. */
export interface RotationTimes {
  /** Next run of the master key schedule; null when KEY_ROTATION_CRON is off or nothing schedules. */
  nextMasterRotation: Date | null;
}

interface DataKeyGroup {
  master_key_uri: string;
  key_version: number;
  count: number;
  first_created_at: string;
  last_created_at: string;
}

/**
 * Version of the audit and signing keys, which are not rotated, and of a
 * master key that only stored data keys name. Master key versions come from
 * key_versions, data-key versions from prompt_data_keys.
 */
const tokenKeyVersion = 1;

/**
 * Builds the key inventory: the three token keys, any other master key
 * that stored data keys still name, and one aggregate of data keys per
 * master key URI and data-key version.
 */
export async function listKeys(
  database: Database,
  keys: TokenKey[],
  times: RotationTimes = { nextMasterRotation: null },
): Promise<KeyInventoryItem[]> {
  const groups = await database.sequelize.query<DataKeyGroup>(
    `SELECT master_key_uri, key_version, COUNT(*) AS count,
       MIN(created_at) AS first_created_at, MAX(created_at) AS last_created_at
     FROM prompt_data_keys GROUP BY master_key_uri, key_version ORDER BY master_key_uri, key_version`,
    { type: QueryTypes.SELECT },
  );
  const versions = await listMasterKeyVersions(database);
  const tokenUris = new Set([
    ...keys.map((key) => key.uri),
    ...versions.map((version) => version.keyUri),
  ]);
  const items: KeyInventoryItem[] = [];

  for (const key of keys) {
    if (key.keyClass === 'master' && versions.length) {
      items.push(...(await masterKeyVersionItems(database, key, versions, times)));
      continue;
    }
    items.push({
      keyClass: key.keyClass,
      location: key.uri,
      label: key.label,
      algorithm: key.algorithm,
      keyVersion: tokenKeyVersion,
      created: await readKeyCreation(database, key.uri),
      state: 'active',
      dependents: await tokenKeyDependents(database, key, groups),
      lastRotated: null,
      nextRotation:
        key.keyClass === 'master' ? (times.nextMasterRotation?.toISOString() ?? null) : null,
    });
  }

  // NOTE: a master key URI that is not on this token is reported destroyed,
  // although it may live on a token this appliance does not open.
  const missingMasters = [...new Set(groups.map((group) => group.master_key_uri))].filter(
    (uri) => !tokenUris.has(uri),
  );
  for (const uri of missingMasters) {
    items.push({
      keyClass: 'master',
      location: uri,
      algorithm: 'AES-256 (CKM_AES_KEY_WRAP)',
      keyVersion: tokenKeyVersion,
      state: 'destroyed',
      dependents: { type: 'data-key', count: countFor(groups, uri) },
      lastRotated: null,
      nextRotation: null,
    });
  }

  for (const group of groups) {
    items.push(dataKeyAggregate(group, groups, tokenUris));
  }

  const databaseKey = databaseKeyItem(database);
  if (databaseKey) items.push(databaseKey);
  return items;
}

/** Builds one inventory item per master key version recorded in key_versions. */
async function masterKeyVersionItems(
  database: Database,
  key: TokenKey,
  versions: MasterKeyVersion[],
  times: RotationTimes,
): Promise<KeyInventoryItem[]> {
  const counts = await database.sequelize.query<{ master_key_version: number; count: number }>(
    'SELECT master_key_version, COUNT(*) AS count FROM prompt_data_keys GROUP BY master_key_version',
    { type: QueryTypes.SELECT },
  );
  const countOf = (version: number) =>
    counts.find((row) => row.master_key_version === version)?.count ?? 0;
  const others = await countMasterWrappedByUri(database);

  // Version 1 comes from token set-up, so only a later newest version was made by a rotation.
  const newest = versions[versions.length - 1];
  const lastRotated = newest && newest.version > 1 ? newest.createdAt : null;

  const items: KeyInventoryItem[] = [];
  for (const version of versions) {
    items.push({
      keyClass: 'master',
      location: version.keyUri,
      label: masterKeyVersionLabel(version.version),
      algorithm: key.algorithm,
      keyVersion: version.version,
      created:
        version.keyUri === key.uri
          ? await readKeyCreation(database, key.uri)
          : { createdAt: version.createdAt, source: 'rotation' },
      state: version.state,
      dependents: { type: 'data-key', count: countOf(version.version) },
      alsoWraps: Object.fromEntries(
        masterWrappedTables.map((source) => [
          source.table,
          others.get(`${source.table} ${version.keyUri}`) ?? 0,
        ]),
      ),
      lastRotated,
      nextRotation:
        version.state === 'active' ? (times.nextMasterRotation?.toISOString() ?? null) : null,
    });
  }
  return items;
}

/** Counts the rows of each master-wrapped table by master key URI, keyed `<table> <uri>`. */
async function countMasterWrappedByUri(database: Database): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const source of masterWrappedTables) {
    const rows = await database.sequelize.query<{ uri: string; count: number }>(
      `SELECT t.master_key_uri AS uri, COUNT(*) AS count FROM ${source.table} t
       WHERE t.master_key_uri IS NOT NULL AND ${source.where ?? '1 = 1'} GROUP BY t.master_key_uri`,
      { type: QueryTypes.SELECT },
    );
    for (const row of rows) counts.set(`${source.table} ${row.uri}`, row.count);
  }
  return counts;
}

async function tokenKeyDependents(
  database: Database,
  key: TokenKey,
  groups: DataKeyGroup[],
): Promise<KeyInventoryItem['dependents']> {
  switch (key.keyClass) {
    case 'master':
      return { type: 'data-key', count: countFor(groups, key.uri) };
    case 'audit-hmac':
      return { type: 'audit-record', count: await countRows(database, 'audit_records') };
    case 'signing':
      return { type: 'audit-checkpoint', count: await countRows(database, 'audit_checkpoints') };
  }
}

/**
 * Builds one aggregate of data keys. The newest version under a master key
 * on the token is active, and older versions are decrypt-only. Every prompt
 * has its own data key, so the dependents are one prompt per data key.
 */
function dataKeyAggregate(
  group: DataKeyGroup,
  groups: DataKeyGroup[],
  tokenUris: Set<string>,
): KeyInventoryItem {
  const newestVersion = Math.max(
    ...groups
      .filter((other) => other.master_key_uri === group.master_key_uri)
      .map((other) => other.key_version),
  );
  const state: KeyState = !tokenUris.has(group.master_key_uri)
    ? 'destroyed'
    : group.key_version === newestVersion
      ? 'active'
      : 'decrypt-only';

  return {
    keyClass: 'data-key',
    location: dataKeyLocation,
    algorithm: 'AES-256-GCM data keys, one per prompt',
    keyVersion: group.key_version,
    created: { createdAt: group.first_created_at, source: 'data-key-row' },
    lastCreatedAt: group.last_created_at,
    state,
    dependents: { type: 'prompt', count: group.count },
    masterKeyUri: group.master_key_uri,
    lastRotated: null,
    nextRotation: null,
  };
}

function countFor(groups: DataKeyGroup[], masterKeyUri: string): number {
  return groups
    .filter((group) => group.master_key_uri === masterKeyUri)
    .reduce((sum, group) => sum + group.count, 0);
}

async function countRows(
  database: Database,
  table: 'audit_records' | 'audit_checkpoints',
): Promise<number> {
  const rows = await database.sequelize.query<{ count: number }>(
    `SELECT COUNT(*) AS count FROM ${table}`,
    { type: QueryTypes.SELECT },
  );
  return rows[0]?.count ?? 0;
}
