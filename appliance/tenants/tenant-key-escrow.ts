import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { Database } from '../platform/database';
import { RecoveryInputError } from '../recovery/errors';
import { readRecoveryKey, type RecoveryKeyRecord } from '../recovery/escrow';
import { sealDataKey, type RecoveryKey } from '../recovery/recovery-key';

/**
 * Escrow binding of a tenant key version. The recovery key's sealing binds
 * a prompt id and a key version. A tenant key uses `tenant:<project id>`
 * and its own version, which no prompt id (a UUID) can equal.
 */
function escrowBinding(projectId: string, version: number): [string, number] {
  return [`tenant:${projectId}`, version];
}

/** Keeps the appliance tenant key versions (alias v) without an escrow row under :fingerprint. */
const unescrowedJoin = `LEFT JOIN tenant_key_escrow e ON e.project_id = v.project_id
       AND e.version = v.version AND e.recovery_fingerprint = :fingerprint
     WHERE v.wrapped_key IS NOT NULL AND e.project_id IS NULL`;

/**
 * Stores the escrow copy of a new tenant key version under the recovery key
 * in force. Does nothing while no recovery key exists;
 * `appliancectl recovery init` escrows it later.
 */
export async function escrowTenantKey(
  database: Database,
  projectId: string,
  version: number,
  tenantKey: Buffer,
  transaction: Transaction,
): Promise<void> {
  const recovery = await readRecoveryKey(database, transaction);
  if (recovery) await saveEscrow(database, recovery, projectId, version, tenantKey, transaction);
}

/**
 * Escrows every appliance tenant key version without an escrow copy under
 * `recovery`. Each key is unwrapped by the HSM into process memory, sealed
 * to the recovery public key and overwritten. Runs in the caller's write
 * transaction, so an HSM failure escrows nothing. Returns the count.
 */
export async function escrowMissingTenantKeys(
  database: Database,
  keys: KeyProvider,
  recovery: RecoveryKeyRecord,
  transaction: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<{
    project_id: string;
    version: number;
    wrapped_key: Buffer;
    master_key_uri: string;
  }>(
    `SELECT v.project_id, v.version, v.wrapped_key, v.master_key_uri FROM project_key_versions v
     ${unescrowedJoin} ORDER BY v.project_id, v.version`,
    { type: QueryTypes.SELECT, transaction, replacements: { fingerprint: recovery.fingerprint } },
  );

  for (const row of rows) {
    const tenantKey = keys.unwrapDataKey(Buffer.from(row.wrapped_key), row.master_key_uri);
    try {
      await saveEscrow(database, recovery, row.project_id, row.version, tenantKey, transaction);
    } finally {
      tenantKey.fill(0);
    }
  }
  return rows.length;
}

/** Counts the appliance tenant key versions with no escrow copy under the recovery key `fingerprint`. */
export async function countUnescrowedTenantKeys(
  database: Database,
  fingerprint: string,
  transaction?: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<{ count: number }>(
    `SELECT COUNT(*) AS count FROM project_key_versions v ${unescrowedJoin}`,
    { type: QueryTypes.SELECT, transaction, replacements: { fingerprint } },
  );
  return rows[0]?.count ?? 0;
}

/**
 * Opens each escrowed tenant key version with the recovery key and wraps it
 * under this token's master key (version 1), during a restore onto a new
 * token. The data keys under the tenant keys stay as they are. A version
 * without escrow stops the restore, because the prompts of its project
 * could not be opened afterwards. Returns the number of versions rewrapped.
 */
export async function restoreTenantKeysFromEscrow(
  database: Database,
  keys: KeyProvider,
  recoveryKey: RecoveryKey,
  transaction: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<{
    project_id: string;
    version: number;
    sealed_key: Buffer | null;
  }>(
    `SELECT v.project_id, v.version, e.sealed_key FROM project_key_versions v
     LEFT JOIN tenant_key_escrow e ON e.project_id = v.project_id AND e.version = v.version
       AND e.recovery_fingerprint = :fingerprint
     WHERE v.wrapped_key IS NOT NULL ORDER BY v.project_id, v.version`,
    {
      type: QueryTypes.SELECT,
      transaction,
      replacements: { fingerprint: recoveryKey.fingerprint() },
    },
  );
  const missing = rows.filter((row) => row.sealed_key === null);
  if (missing.length) {
    throw new RecoveryInputError(
      `--backup: ${missing.length} tenant key versions have no escrow (first: project ${missing[0].project_id} version ${missing[0].version}); take backups after \`appliancectl recovery escrow-sync\``,
    );
  }

  for (const row of rows) {
    let tenantKey: Buffer;
    try {
      tenantKey = recoveryKey.openDataKey(
        Buffer.from(row.sealed_key!),
        ...escrowBinding(row.project_id, row.version),
      );
    } catch {
      throw new RecoveryInputError(
        `--backup: the escrow of tenant key version ${row.version} of project ${row.project_id} fails to open with the recovery key: the backup was altered`,
      );
    }
    try {
      await database.sequelize.query(
        `UPDATE project_key_versions SET wrapped_key = :wrapped, master_key_uri = :uri
         WHERE project_id = :projectId AND version = :version`,
        {
          transaction,
          replacements: {
            wrapped: keys.wrapDataKey(tenantKey, keys.masterKeyUri),
            uri: keys.masterKeyUri,
            projectId: row.project_id,
            version: row.version,
          },
        },
      );
    } finally {
      tenantKey.fill(0);
    }
  }
  return rows.length;
}

async function saveEscrow(
  database: Database,
  recovery: RecoveryKeyRecord,
  projectId: string,
  version: number,
  tenantKey: Buffer,
  transaction: Transaction,
): Promise<void> {
  await database.sequelize.query(
    `INSERT INTO tenant_key_escrow (project_id, version, recovery_fingerprint, sealed_key, created_at)
     VALUES (:projectId, :version, :fingerprint, :sealed, :createdAt)
     ON CONFLICT(project_id, version) DO UPDATE SET recovery_fingerprint = excluded.recovery_fingerprint,
       sealed_key = excluded.sealed_key, created_at = excluded.created_at`,
    {
      transaction,
      replacements: {
        projectId,
        version,
        fingerprint: recovery.fingerprint,
        sealed: sealDataKey(recovery.publicKey, tenantKey, ...escrowBinding(projectId, version)),
        createdAt: new Date().toISOString(),
      },
    },
  );
}
