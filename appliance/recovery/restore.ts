import fs from 'node:fs';

import { QueryTypes, type Transaction } from 'sequelize';

import { ensureToken, openKeyProvider } from '../../hsm';
import type { KeyProvider } from '../../hsm/key-provider';
import { CheckpointingAuditTrail } from '../audit/checkpoints-trail';
import { recordFirstMasterKeyVersion } from '../keys/master-key-versions';
import { restoreTotpKeysFromEscrow } from '../keys/totp-keys';
import { restoreTenantKeysFromEscrow } from '../tenants/tenant-key-escrow';
import type { ApplianceConfig } from '../platform/config';
import { openDatabase, type Database } from '../platform/database';
import { logger } from '../platform/logger';
import {
  databaseKeyFileOf,
  wrapDatabaseKey,
  writeDatabaseKeyRecord,
} from '../platform/database-key';
import { migrate } from '../platform/migrations';
import { writeState } from '../platform/state';
import { wrapMechanism } from '../vault/envelope';
import { verifyBackup, type BackupManifest } from './backup';
import { RecoveryInputError } from './errors';
import { readRecoveryKey } from './escrow';
import { auditEntry } from './init';
import { RecoveryKey } from './recovery-key';
import { combineShares, parseShare } from './shares';

export interface RestoreOptions {
  backupFile: string;
  shares: string[];
  operator: string;
}

export interface RestoreResult {
  databaseFile: string;
  /** Keys wrapped under the new token's master key: restoredDataKeys plus restoredTenantKeys. */
  restoredKeys: number;
  /** Data keys of prompts outside any project (and of older project prompts), from their escrow. */
  restoredDataKeys: number;
  /** Tenant key versions of appliance-keyed projects, from their escrow. */
  restoredTenantKeys: number;
  fingerprint: string;
  sealedAuditHead: BackupManifest['auditHead'];
}

/** appliance_state key of the restore record; the audit domain reads it to verify from there. */
export const restoredStateKey = 'recovery.restored';

interface EscrowRow {
  prompt_id: string;
  key_version: number;
  sealed_key: Buffer | null;
}

/**
 * Restores a backup onto this machine's token. It checks the backup and the
 * shares before writing anything. It then rebuilds the recovery key, moves
 * every data key from its escrow copy to the token's master key, and seals
 * the old audit chain with a `recovery.restore` record. The database is built under
 * a temporary name and takes its place only when all of that has committed.
 */
export async function restoreBackup(
  config: ApplianceConfig,
  options: RestoreOptions,
): Promise<RestoreResult> {
  if (fs.existsSync(config.databaseFile)) {
    throw new RecoveryInputError(
      `${config.databaseFile} already exists; restore only into an empty data directory (set APPLIANCE_DATA_DIR to a new one)`,
    );
  }
  const manifest = verifyBackup(options.backupFile);
  if (!manifest.recovery) {
    throw new RecoveryInputError(
      '--backup was made before `appliancectl recovery init`: it has no escrow and can be read only with its own token',
    );
  }
  if (!options.shares.length) throw new RecoveryInputError("--share: give the custodians' shares");
  const parsed = options.shares.map((text, index) => parseShare(text, index + 1));
  const keyBytes = await combineShares(
    parsed,
    manifest.recovery.fingerprint,
    manifest.recovery.threshold,
  );
  const recoveryKey = RecoveryKey.fromBytes(keyBytes);
  keyBytes.fill(0);

  const building = `${config.databaseFile}.restoring`;
  const keyFile = databaseKeyFileOf(config.secretsDir);
  let databaseKey: Buffer | undefined;
  let keys: KeyProvider | undefined;
  let database: Database | undefined;
  try {
    databaseKey = openEscrowedDatabaseKey(manifest, recoveryKey);
    fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    await ensureToken(config);
    keys = openKeyProvider(config);

    removeDatabaseFiles(building);
    fs.copyFileSync(options.backupFile, building);
    database = await openDatabase(building, { key: databaseKey, keyFile });
    await migrate(database);

    const stored = await readRecoveryKey(database);
    if (stored?.fingerprint !== manifest.recovery.fingerprint) {
      throw new RecoveryInputError(
        `--backup: the database's recovery key fingerprint differs from its manifest's, so the manifest does not belong to this backup`,
      );
    }

    const audit = new CheckpointingAuditTrail(database, keys, {
      records: config.audit.checkpointRecords,
      minutes: config.audit.checkpointMinutes,
    });
    const restored = await database.write(async (transaction) => {
      const dataKeys = await rewrapFromEscrow(database!, keys!, recoveryKey, transaction);
      const tenantKeys = await restoreTenantKeysFromEscrow(
        database!,
        keys!,
        recoveryKey,
        transaction,
      );
      await restoreTotpKeysFromEscrow(database!, keys!, recoveryKey, transaction);
      await resetMasterKeyRecords(database!, keys!, transaction);
      await dropSigningKeys(database!, transaction);

      const sealed = { ...manifest.auditHead, backupSha256: manifest.database.sha256 };
      await writeState(
        database!,
        restoredStateKey,
        JSON.stringify({
          ...sealed,
          restoredAt: new Date().toISOString(),
          signingPublicKeyPem: manifest.signingPublicKeyPem,
        }),
        transaction,
      );
      await audit.append(
        auditEntry(
          { operator: options.operator },
          'recovery.restore',
          manifest.recovery!.fingerprint,
          `restored backup ${manifest.database.sha256.slice(0, 16)} onto token ${config.hsm.tokenLabel}: ${dataKeys} data keys and ${tenantKeys} tenant keys rewrapped; sealed old chain head seq ${sealed.seq} hash ${sealed.hash}; records up to it verify only against the backup's signed checkpoints`,
        ),
        transaction,
      );
      return { dataKeys, tenantKeys };
    });
    await audit.stop();
    await database.close();
    database = undefined;

    // The key file goes in first: a database file without it cannot be opened.
    if (databaseKey) {
      writeDatabaseKeyRecord(
        keyFile,
        wrapDatabaseKey(keys, databaseKey, { uri: keys.masterKeyUri, version: 1 }),
      );
    } else {
      // A plain backup is encrypted at the next start under a new key.
      fs.rmSync(keyFile, { force: true });
    }
    fs.renameSync(building, config.databaseFile);
    return {
      databaseFile: config.databaseFile,
      restoredKeys: restored.dataKeys + restored.tenantKeys,
      restoredDataKeys: restored.dataKeys,
      restoredTenantKeys: restored.tenantKeys,
      fingerprint: manifest.recovery.fingerprint,
      sealedAuditHead: manifest.auditHead,
    };
  } finally {
    recoveryKey.destroy();
    databaseKey?.fill(0);
    await database?.close();
    keys?.close();
    removeDatabaseFiles(building);
  }
}

/**
 * Opens the backup's SQLCipher key from its escrow in the manifest, or
 * returns undefined for a plain backup. Throws RecoveryInputError when the
 * escrow is missing or fails to open with the recovery key.
 */
function openEscrowedDatabaseKey(
  manifest: BackupManifest,
  recoveryKey: RecoveryKey,
): Buffer | undefined {
  if (!manifest.databaseKey) return undefined;
  if (!manifest.databaseKey.escrow) {
    throw new RecoveryInputError(
      '--backup: the manifest has no escrow of the database key, so only the token that made the backup can open it',
    );
  }
  try {
    return recoveryKey.openDatabaseKey(Buffer.from(manifest.databaseKey.escrow, 'base64'));
  } catch {
    throw new RecoveryInputError(
      '--backup: the escrow of the database key in the manifest fails to open with the recovery key: the manifest was altered or belongs to another recovery key',
    );
  }
}

/**
 * Opens each escrowed data key with the recovery key and wraps it under this
 * token's master key (version 1 of the restored key_versions). A data key
 * without escrow, or whose escrow fails to open, stops the restore.
 */
async function rewrapFromEscrow(
  database: Database,
  keys: KeyProvider,
  recoveryKey: RecoveryKey,
  transaction: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<EscrowRow>(
    `SELECT d.prompt_id, d.key_version, e.sealed_key FROM prompt_data_keys d
     LEFT JOIN recovery_escrow e ON e.prompt_id = d.prompt_id AND e.key_version = d.key_version
       AND e.recovery_fingerprint = :fingerprint
     ORDER BY d.prompt_id, d.key_version`,
    {
      type: QueryTypes.SELECT,
      transaction,
      replacements: { fingerprint: recoveryKey.fingerprint() },
    },
  );
  const missing = rows.filter((row) => row.sealed_key === null);
  if (missing.length) {
    throw new RecoveryInputError(
      `--backup: ${missing.length} data keys have no escrow (first: prompt ${missing[0].prompt_id}); take backups after \`appliancectl recovery escrow-sync\``,
    );
  }

  for (const row of rows) {
    let dataKey: Buffer;
    try {
      dataKey = recoveryKey.openDataKey(
        Buffer.from(row.sealed_key!),
        row.prompt_id,
        row.key_version,
      );
    } catch {
      throw new RecoveryInputError(
        `--backup: the escrow of prompt ${row.prompt_id} fails to open with the recovery key: the backup was altered`,
      );
    }
    try {
      await database.sequelize.query(
        `UPDATE prompt_data_keys SET wrapped_key = :wrapped, wrap_mechanism = :mechanism,
           master_key_uri = :uri, master_key_version = 1
         WHERE prompt_id = :promptId AND key_version = :keyVersion`,
        {
          transaction,
          replacements: {
            wrapped: keys.wrapDataKey(dataKey, keys.masterKeyUri),
            mechanism: wrapMechanism,
            uri: keys.masterKeyUri,
            promptId: row.prompt_id,
            keyVersion: row.key_version,
          },
        },
      );
    } finally {
      dataKey.fill(0);
    }
  }
  return rows.length;
}

/**
 * The old token's master key versions do not exist on this token: version 1
 * becomes this token's master key, and a rotation that was running in the
 * backup is marked failed so the key inventory does not resume it.
 */
async function resetMasterKeyRecords(
  database: Database,
  keys: KeyProvider,
  transaction: Transaction,
): Promise<void> {
  await database.sequelize.query('DELETE FROM key_versions', { transaction });
  await recordFirstMasterKeyVersion(database, keys, transaction);
  await database.sequelize.query(
    `UPDATE key_rotations SET state = 'failed', finished_at = :now,
       error = 'the backup was restored onto a new token before this rotation finished'
     WHERE state = 'running'`,
    { transaction, replacements: { now: new Date().toISOString() } },
  );
}

/**
 * Deletes the OAuth access token signing keys. Their data keys are wrapped
 * by token A's master key and have no escrow, so token B cannot open them,
 * and the first token request on B generates a new key pair. Access tokens
 * that A signed then fail verification, and clients request new ones with
 * their client secret or refresh token.
 */
async function dropSigningKeys(database: Database, transaction: Transaction): Promise<void> {
  const dropped = await database.sequelize.query<{ kid: string }>(
    'DELETE FROM oauth_signing_keys RETURNING kid',
    { type: QueryTypes.SELECT, transaction },
  );
  if (dropped.length) {
    logger.info(
      { kids: dropped.map((row) => row.kid) },
      'OAuth signing keys of the backup dropped by restore',
    );
  }
}

function removeDatabaseFiles(file: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal'])
    fs.rmSync(`${file}${suffix}`, { force: true });
}
