import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';

/**
 * A table of data keys that the master key wraps outside prompt_data_keys.
 * Each row stores the URI of its master key version, not the version
 * number. The rows are few, so a rotation rewraps them all in the
 * transaction that completes it.
 */
export interface MasterWrappedTable {
  /** Name of one key in logs and errors, such as "TOTP data key of user". */
  label: string;
  table: string;
  idColumn: string;
  wrappedColumn: string;
  /**
   * Rewrap policy for a row under a master key that key_versions does not
   * record: `fail` stops the rotation, and `delete` removes the row, for
   * keys that the appliance makes again on demand.
   */
  unrecorded: 'fail' | 'delete';
  /** SQL condition on the table (alias t) that keeps only rows wrapped by the master key. */
  where?: string;
}

/** TOTP data keys, one per user with an authenticator. */
export const totpDataKeys: MasterWrappedTable = {
  label: 'TOTP data key of user',
  table: 'user_totp',
  idColumn: 'user_id',
  wrappedColumn: 'wrapped_key',
  unrecorded: 'fail',
};

/** Data keys that seal the OAuth access token signing keys, one per key id. */
export const signingDataKeys: MasterWrappedTable = {
  label: 'data key of OAuth signing key',
  table: 'oauth_signing_keys',
  idColumn: 'kid',
  wrappedColumn: 'wrapped_data_key',
  // Such a key came from another token, such as in a restore by an older
  // release. It opens nowhere, and the next token request generates a new pair.
  unrecorded: 'delete',
};

/**
 * Tenant keys of appliance-keyed projects, one per project and version. The
 * data keys under them stay as they are, so a master key rotation costs one
 * rewrap per tenant key version, not per prompt.
 */
export const applianceTenantKeys: MasterWrappedTable = {
  label: 'tenant key version',
  table: 'project_key_versions',
  idColumn: 'key_uri',
  wrappedColumn: 'wrapped_key',
  unrecorded: 'fail',
  // Customer-keyed versions live on the customer token and have no wrapped copy.
  where: 't.wrapped_key IS NOT NULL',
};

/** Every table that a master key rotation rewraps after the prompt data keys. */
export const masterWrappedTables: readonly MasterWrappedTable[] = [
  totpDataKeys,
  signingDataKeys,
  applianceTenantKeys,
];

/**
 * Counts the rows of `source` wrapped under a master key version below
 * `version`, or under a key that key_versions does not record.
 */
export async function countMasterWrappedBelow(
  database: Database,
  source: MasterWrappedTable,
  version: number,
  transaction?: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<{ count: number }>(
    `SELECT COUNT(*) AS count FROM ${source.table} t
     LEFT JOIN key_versions v ON v.key_uri = t.master_key_uri
     WHERE (v.version IS NULL OR v.version < :version) AND ${source.where ?? '1 = 1'}`,
    { type: QueryTypes.SELECT, transaction, replacements: { version } },
  );
  return rows[0]?.count ?? 0;
}

/**
 * Rewraps every key of `source` not yet under the rotation's master key
 * version, inside the token. The unwrap key is the stored URI once
 * key_versions is found to record it. A row naming an unrecorded key stops
 * the rotation or is deleted, as `source.unrecorded` sets. Returns the
 * number of keys moved or deleted.
 */
export async function rewrapMasterWrappedKeys(
  database: Database,
  keys: KeyProvider,
  source: MasterWrappedTable,
  rotation: { keyUri: string },
  transaction: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<{
    id: string;
    wrapped: Buffer;
    master_key_uri: string;
    version: number | null;
  }>(
    `SELECT t.${source.idColumn} AS id, t.${source.wrappedColumn} AS wrapped, t.master_key_uri, v.version
     FROM ${source.table} t LEFT JOIN key_versions v ON v.key_uri = t.master_key_uri
     WHERE t.master_key_uri <> :uri AND ${source.where ?? '1 = 1'} ORDER BY t.${source.idColumn}`,
    { type: QueryTypes.SELECT, transaction, replacements: { uri: rotation.keyUri } },
  );

  for (const row of rows) {
    if (row.version === null) {
      const message = `the ${source.label} ${row.id} names the master key ${row.master_key_uri}, which key_versions does not record`;
      if (source.unrecorded === 'fail') throw new Error(message);

      await database.sequelize.query(
        `DELETE FROM ${source.table} WHERE ${source.idColumn} = :id AND master_key_uri = :from`,
        { transaction, replacements: { id: row.id, from: row.master_key_uri } },
      );
      logger.warn({ table: source.table, id: row.id }, `${message}; row deleted by the rewrap`);
      continue;
    }
    const rewrapped = keys.rewrapDataKey(
      Buffer.from(row.wrapped),
      row.master_key_uri,
      rotation.keyUri,
    );
    await database.sequelize.query(
      `UPDATE ${source.table} SET ${source.wrappedColumn} = :wrapped, master_key_uri = :uri
       WHERE ${source.idColumn} = :id AND master_key_uri = :from`,
      {
        transaction,
        replacements: {
          wrapped: rewrapped,
          uri: rotation.keyUri,
          id: row.id,
          from: row.master_key_uri,
        },
      },
    );
  }
  return rows.length;
}
