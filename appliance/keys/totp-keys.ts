import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import { readRecoveryKey, type RecoveryKeyRecord } from '../recovery/escrow';
import { sealDataKey, type RecoveryKey } from '../recovery/recovery-key';
import { activeMasterKey } from './master-key-versions';

/**
 * Escrow binding of a TOTP data key. The recovery key's sealing binds a
 * prompt id and a data-key version. A TOTP key uses `totp:<user id>` and
 * version 1, which no prompt id (a UUID) can equal.
 */
function escrowBinding(userId: string): [string, number] {
  return [`totp:${userId}`, 1];
}

/** Keeps the user_totp rows (alias t) without an escrow row under :fingerprint. */
const unescrowedJoin = `LEFT JOIN totp_escrow e ON e.user_id = t.user_id AND e.recovery_fingerprint = :fingerprint
     WHERE e.user_id IS NULL`;

/**
 * Wraps a new TOTP data key under the active master key version, read in
 * the caller's write transaction so a rotation committed meanwhile cannot
 * leave it under the previous version. Returns the bytes and the URI to store.
 */
export async function wrapTotpDataKey(
  database: Database,
  keys: KeyProvider,
  dataKey: Buffer,
  transaction: Transaction,
): Promise<{ wrapped: Buffer; masterKeyUri: string }> {
  const master = await activeMasterKey(database, keys, transaction);
  return { wrapped: keys.wrapDataKey(dataKey, master.keyUri), masterKeyUri: master.keyUri };
}

/**
 * Stores the escrow copy of a user's TOTP data key under the recovery key
 * in force, replacing an earlier one. Does nothing while no recovery key exists.
 */
export async function escrowTotpDataKey(
  database: Database,
  userId: string,
  dataKey: Buffer,
  transaction: Transaction,
): Promise<void> {
  const recovery = await readRecoveryKey(database, transaction);
  if (recovery) await saveEscrow(database, recovery, userId, dataKey, transaction);
}

/**
 * Escrows every TOTP data key that has no escrow copy under `recovery`,
 * such as those enrolled before the recovery key existed or escrowed under
 * a replaced one. Each key is unwrapped by the HSM into process memory,
 * sealed to the recovery public key and overwritten. Runs in the caller's
 * write transaction, so an HSM failure escrows nothing. Throws for a key
 * under a master key that key_versions does not record. Returns the count.
 */
export async function escrowMissingTotpKeys(
  database: Database,
  keys: KeyProvider,
  recovery: RecoveryKeyRecord,
  transaction: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<{
    user_id: string;
    wrapped_key: Buffer;
    master_key_uri: string;
    version: number | null;
  }>(
    `SELECT t.user_id, t.wrapped_key, t.master_key_uri, v.version FROM user_totp t
     LEFT JOIN key_versions v ON v.key_uri = t.master_key_uri
     ${unescrowedJoin} ORDER BY t.user_id`,
    { type: QueryTypes.SELECT, transaction, replacements: { fingerprint: recovery.fingerprint } },
  );

  for (const row of rows) {
    if (row.version === null && row.master_key_uri !== keys.masterKeyUri) {
      throw new Error(
        `the TOTP data key of user ${row.user_id} names the master key ${row.master_key_uri}, which key_versions does not record`,
      );
    }
    const dataKey = keys.unwrapDataKey(Buffer.from(row.wrapped_key), row.master_key_uri);
    try {
      await saveEscrow(database, recovery, row.user_id, dataKey, transaction);
    } finally {
      dataKey.fill(0);
    }
  }
  return rows.length;
}

/** Counts the TOTP data keys with no escrow copy under the recovery key `fingerprint`. */
export async function countUnescrowedTotpKeys(
  database: Database,
  fingerprint: string,
  transaction?: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<{ count: number }>(
    `SELECT COUNT(*) AS count FROM user_totp t ${unescrowedJoin}`,
    { type: QueryTypes.SELECT, transaction, replacements: { fingerprint } },
  );
  return rows[0]?.count ?? 0;
}

/**
 * Opens each escrowed TOTP data key with the recovery key and wraps it
 * under this token's master key (version 1), during a restore onto a new
 * token. A TOTP authenticator without escrow is deleted, because its key
 * cannot be unwrapped here: that user signs in with a recovery code and
 * enrols again. Returns the counts of rewrapped and deleted authenticators.
 */
export async function restoreTotpKeysFromEscrow(
  database: Database,
  keys: KeyProvider,
  recoveryKey: RecoveryKey,
  transaction: Transaction,
): Promise<{ rewrapped: number; deleted: number }> {
  const rows = await database.sequelize.query<{ user_id: string; sealed_key: Buffer | null }>(
    `SELECT t.user_id, e.sealed_key FROM user_totp t
     LEFT JOIN totp_escrow e ON e.user_id = t.user_id AND e.recovery_fingerprint = :fingerprint
     ORDER BY t.user_id`,
    {
      type: QueryTypes.SELECT,
      transaction,
      replacements: { fingerprint: recoveryKey.fingerprint() },
    },
  );

  let rewrapped = 0;
  let deleted = 0;
  for (const row of rows) {
    if (row.sealed_key === null) {
      await database.sequelize.query('DELETE FROM user_totp WHERE user_id = :userId', {
        transaction,
        replacements: { userId: row.user_id },
      });
      logger.warn({ userId: row.user_id }, 'TOTP authenticator without escrow deleted by restore');
      deleted += 1;
      continue;
    }

    // A sealed key that fails to open throws, which stops the restore: the backup was altered.
    const dataKey = recoveryKey.openDataKey(
      Buffer.from(row.sealed_key),
      ...escrowBinding(row.user_id),
    );
    try {
      await database.sequelize.query(
        `UPDATE user_totp SET wrapped_key = :wrapped, master_key_uri = :uri WHERE user_id = :userId`,
        {
          transaction,
          replacements: {
            wrapped: keys.wrapDataKey(dataKey, keys.masterKeyUri),
            uri: keys.masterKeyUri,
            userId: row.user_id,
          },
        },
      );
    } finally {
      dataKey.fill(0);
    }
    rewrapped += 1;
  }
  return { rewrapped, deleted };
}

async function saveEscrow(
  database: Database,
  recovery: RecoveryKeyRecord,
  userId: string,
  dataKey: Buffer,
  transaction: Transaction,
): Promise<void> {
  await database.sequelize.query(
    `INSERT INTO totp_escrow (user_id, recovery_fingerprint, sealed_key, created_at)
     VALUES (:userId, :fingerprint, :sealed, :createdAt)
     ON CONFLICT(user_id) DO UPDATE SET recovery_fingerprint = excluded.recovery_fingerprint,
       sealed_key = excluded.sealed_key, created_at = excluded.created_at`,
    {
      transaction,
      replacements: {
        userId,
        fingerprint: recovery.fingerprint,
        sealed: sealDataKey(recovery.publicKey, dataKey, ...escrowBinding(userId)),
        createdAt: new Date().toISOString(),
      },
    },
  );
}
