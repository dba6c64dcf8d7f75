import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { Database } from '../platform/database';
import { sealDataKey } from './recovery-key';

/** The stored, public record of the recovery key. */
export interface RecoveryKeyRecord {
  fingerprint: string;
  publicKey: Buffer;
  shareCount: number;
  threshold: number;
  custodians: string[];
  createdBy: string;
  createdAt: string;
}

interface RecoveryKeyRow {
  fingerprint: string;
  public_key: Buffer;
  share_count: number;
  threshold: number;
  custodians: string;
  created_by: string;
  created_at: string;
}

interface UnescrowedRow {
  prompt_id: string;
  key_version: number;
  wrapped_key: Buffer;
  master_key_version: number;
  /** URI recorded in key_versions for master_key_version; null when key_versions has no row. */
  version_uri: string | null;
}

/** Reads the recovery key record; undefined before `appliancectl recovery init`. */
export async function readRecoveryKey(
  database: Database,
  transaction?: Transaction,
): Promise<RecoveryKeyRecord | undefined> {
  const rows = await database.sequelize.query<RecoveryKeyRow>(
    'SELECT * FROM recovery_keys ORDER BY created_at DESC LIMIT 1',
    { type: QueryTypes.SELECT, transaction },
  );
  if (!rows.length) return undefined;

  const row = rows[0];
  return {
    fingerprint: row.fingerprint,
    publicKey: Buffer.from(row.public_key),
    shareCount: row.share_count,
    threshold: row.threshold,
    custodians: JSON.parse(row.custodians) as string[],
    createdBy: row.created_by,
    createdAt: row.created_at,
  };
}

/** Replaces any earlier recovery key record; their escrow rows go with them (ON DELETE CASCADE). */
export async function saveRecoveryKey(
  database: Database,
  record: RecoveryKeyRecord,
  transaction: Transaction,
): Promise<void> {
  await database.sequelize.query('DELETE FROM recovery_keys', { transaction });
  await database.sequelize.query(
    `INSERT INTO recovery_keys (fingerprint, public_key, share_count, threshold, custodians, created_by, created_at)
     VALUES (:fingerprint, :publicKey, :shareCount, :threshold, :custodians, :createdBy, :createdAt)`,
    {
      transaction,
      replacements: { ...record, custodians: JSON.stringify(record.custodians) },
    },
  );
}

/**
 * Escrows every data key that has no escrow row under `recovery`: each is
 * unwrapped by the HSM into process memory, sealed to the recovery public
 * key and overwritten. Runs inside the caller's write transaction, so an HSM
 * failure escrows nothing. Returns the number of keys escrowed.
 */
export async function escrowMissingDataKeys(
  database: Database,
  keys: KeyProvider,
  recovery: RecoveryKeyRecord,
  transaction: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<UnescrowedRow>(
    `SELECT d.prompt_id, d.key_version, d.wrapped_key, d.master_key_version, v.key_uri AS version_uri
     FROM prompt_data_keys d
     LEFT JOIN key_versions v ON v.version = d.master_key_version
     LEFT JOIN recovery_escrow e ON e.prompt_id = d.prompt_id AND e.key_version = d.key_version
       AND e.recovery_fingerprint = :fingerprint
     WHERE e.prompt_id IS NULL
     ORDER BY d.prompt_id, d.key_version`,
    { type: QueryTypes.SELECT, transaction, replacements: { fingerprint: recovery.fingerprint } },
  );

  for (const row of rows) {
    // Like the vault, the unwrap key comes from key_versions, not from the
    // data-key row, so an edited row cannot point the unwrap at another key.
    const dataKey = keys.unwrapDataKey(
      Buffer.from(row.wrapped_key),
      row.version_uri ?? keys.masterKeyUri,
    );
    try {
      await escrowDataKey(database, recovery, row.prompt_id, row.key_version, dataKey, transaction);
    } finally {
      dataKey.fill(0);
    }
  }
  return rows.length;
}

/**
 * Stores the escrow copy of one data key in the caller's transaction: the
 * prompt's create transaction (through `escrowAtCreation`) or an escrow run.
 */
export async function escrowDataKey(
  database: Database,
  recovery: RecoveryKeyRecord,
  promptId: string,
  keyVersion: number,
  dataKey: Buffer,
  transaction: Transaction,
): Promise<void> {
  await database.sequelize.query(
    `INSERT INTO recovery_escrow (prompt_id, key_version, recovery_fingerprint, sealed_key, created_at)
     VALUES (:promptId, :keyVersion, :fingerprint, :sealed, :createdAt)`,
    {
      transaction,
      replacements: {
        promptId,
        keyVersion,
        fingerprint: recovery.fingerprint,
        sealed: sealDataKey(recovery.publicKey, dataKey, promptId, keyVersion),
        createdAt: new Date().toISOString(),
      },
    },
  );
}

/** Counts data keys with no escrow row under the current recovery key. */
export async function countUnescrowed(
  database: Database,
  fingerprint: string,
  transaction?: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<{ count: number }>(
    `SELECT COUNT(*) AS count FROM prompt_data_keys d
     LEFT JOIN recovery_escrow e ON e.prompt_id = d.prompt_id AND e.key_version = d.key_version
       AND e.recovery_fingerprint = :fingerprint
     WHERE e.prompt_id IS NULL`,
    { type: QueryTypes.SELECT, transaction, replacements: { fingerprint } },
  );
  return rows[0]?.count ?? 0;
}

/**
 * Returns the vault hook that escrows each new data key at creation under
 * the recovery key in force, or does nothing while no recovery key exists.
 */
export function escrowAtCreation(database: Database) {
  return async (
    promptId: string,
    keyVersion: number,
    dataKey: Buffer,
    transaction: Transaction,
  ) => {
    const recovery = await readRecoveryKey(database, transaction);
    if (recovery)
      await escrowDataKey(database, recovery, promptId, keyVersion, dataKey, transaction);
  };
}
