import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { openDatabase, type Database } from '../platform/database';
import { isPlainSqlite } from '../platform/database-encryption';
import {
  readDatabaseKeyRecord,
  unwrapDatabaseKey,
  type DatabaseKeyRecord,
} from '../platform/database-key';
import { readState } from '../platform/state';
import { RecoveryInputError } from './errors';
import { countUnescrowedTotpKeys } from '../keys/totp-keys';
import { countUnescrowedTenantKeys } from '../tenants/tenant-key-escrow';
import { countUnescrowed, readRecoveryKey } from './escrow';
import { auditEntry, type RecoveryContext } from './init';
import { sealDatabaseKey } from './recovery-key';

/** The file written beside a backup; restore checks the database against it. */
export interface BackupManifest {
  format: typeof manifestFormat;
  version: 1;
  createdAt: string;
  database: { file: string; bytes: number; sha256: string };
  /** Null when the appliance had no recovery key: such a backup needs the old token to be read. */
  recovery: {
    fingerprint: string;
    threshold: number;
    shareCount: number;
    custodians: string[];
  } | null;
  /** Prompt and TOTP data keys in the copy that have no escrow row; they cannot be restored with shares. */
  unescrowedDataKeys: number;
  /** Head of the audit chain in the copy, sealed by the `recovery.restore` record. */
  auditHead: { seq: number; hash: string };
  /** Public key that verifies the copy's signed audit checkpoints (SPKI PEM). */
  signingPublicKeyPem: string;
  /**
   * The SQLCipher key of the copy; absent for a plain SQLite backup. `wrapped`
   * opens the copy with the token that made it, `escrow` (base64, sealed to
   * the recovery public key) with the custodians' shares on any token, and is
   * null when the appliance had no recovery key.
   */
  databaseKey?: { wrapped: DatabaseKeyRecord; escrow: string | null };
}

export const manifestFormat = 'prompt-bank-appliance-backup';

export function manifestFileOf(backupFile: string): string {
  return `${backupFile}.manifest.json`;
}

/**
 * Writes a consistent copy of the live database with VACUUM INTO (SQLite's
 * online copy, which reads one snapshot and includes committed WAL frames)
 * and its manifest. The copy is written under a temporary name and renamed
 * only after its audit record is stored.
 */
export async function createBackup(
  context: RecoveryContext,
  backupFile: string,
): Promise<BackupManifest> {
  const file = path.resolve(backupFile);
  const manifestFile = manifestFileOf(file);
  for (const target of [file, manifestFile]) {
    if (fs.existsSync(target)) {
      throw new RecoveryInputError(`${target} already exists; choose a new FILE for the backup`);
    }
  }
  if (!fs.existsSync(path.dirname(file))) {
    throw new RecoveryInputError(`FILE: the folder ${path.dirname(file)} does not exist`);
  }

  const partial = `${file}.partial-${crypto.randomBytes(4).toString('hex')}`;
  try {
    await context.database.sequelize.query('VACUUM INTO :partial', { replacements: { partial } });
    fs.chmodSync(partial, 0o600);

    const facts = await readCopy(context, partial);
    const content = fs.readFileSync(partial);
    const manifest: BackupManifest = {
      format: manifestFormat,
      version: 1,
      createdAt: new Date().toISOString(),
      database: {
        file: path.basename(file),
        bytes: content.length,
        sha256: crypto.createHash('sha256').update(content).digest('hex'),
      },
      ...facts,
      signingPublicKeyPem: context.keys.signingPublicKeyPem(),
    };

    await context.database.write((transaction) =>
      context.audit.append(
        {
          ...auditEntry(
            context,
            'backup.create',
            manifest.database.sha256,
            `backup ${manifest.database.sha256.slice(0, 16)}, recovery key ${manifest.recovery?.fingerprint.slice(0, 8) ?? 'none'}, ${manifest.unescrowedDataKeys} data keys not escrowed`,
          ),
          resource: { type: 'backup', id: manifest.database.sha256.slice(0, 64) },
        },
        transaction,
      ),
    );

    fs.writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    fs.renameSync(partial, file);
    return manifest;
  } finally {
    fs.rmSync(partial, { force: true });
  }
}

/**
 * Reads the recovery record and audit head from the copy itself, so they
 * match its content. An encrypted live database must give an encrypted copy
 * (SQLCipher 4.14's VACUUM INTO writes it under the same key), so a copy
 * that starts with the plain SQLite header is rejected.
 */
async function readCopy(
  context: RecoveryContext,
  file: string,
): Promise<Pick<BackupManifest, 'recovery' | 'unescrowedDataKeys' | 'auditHead' | 'databaseKey'>> {
  const keyFile = context.database.keyFile;
  const wrapped = keyFile ? readDatabaseKeyRecord(keyFile) : undefined;
  if (keyFile && !wrapped) throw new Error(`the database key file ${keyFile} is missing`);
  const key = wrapped ? unwrapDatabaseKey(context.keys, wrapped) : undefined;

  let copy: Database | undefined;
  try {
    if (key && isPlainSqlite(file)) {
      throw new Error(
        'VACUUM INTO wrote an unencrypted copy of the encrypted database; no backup was made',
      );
    }
    copy = await openDatabase(file, { key });
    // Back to a single file: the copy is one self-contained SQLite file.
    await copy.sequelize.query('PRAGMA journal_mode = DELETE');
    const recovery = await readRecoveryKey(copy);
    const head = await readState(copy, 'audit.head');
    return {
      recovery: recovery
        ? {
            fingerprint: recovery.fingerprint,
            threshold: recovery.threshold,
            shareCount: recovery.shareCount,
            custodians: recovery.custodians,
          }
        : null,
      unescrowedDataKeys: recovery
        ? (await countUnescrowed(copy, recovery.fingerprint)) +
          (await countUnescrowedTotpKeys(copy, recovery.fingerprint)) +
          (await countUnescrowedTenantKeys(copy, recovery.fingerprint))
        : 0,
      auditHead: head ? (JSON.parse(head) as BackupManifest['auditHead']) : { seq: 0, hash: '' },
      ...(wrapped && key
        ? {
            databaseKey: {
              wrapped,
              escrow: recovery ? sealDatabaseKey(recovery.publicKey, key).toString('base64') : null,
            },
          }
        : {}),
    };
  } finally {
    key?.fill(0);
    await copy?.close();
  }
}

/** Reads a manifest and checks the backup file against it. */
export function verifyBackup(backupFile: string): BackupManifest {
  const file = path.resolve(backupFile);
  const manifestFile = manifestFileOf(file);
  if (!fs.existsSync(file)) throw new RecoveryInputError(`--backup ${file} does not exist`);
  if (!fs.existsSync(manifestFile)) {
    throw new RecoveryInputError(
      `--backup: the manifest ${manifestFile} is missing; keep it beside the backup file`,
    );
  }

  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as BackupManifest;
  } catch {
    throw new RecoveryInputError(`--backup: the manifest ${manifestFile} is not valid JSON`);
  }
  if (manifest.format !== manifestFormat || manifest.version !== 1) {
    throw new RecoveryInputError(
      `--backup: ${manifestFile} is not a version 1 ${manifestFormat} manifest`,
    );
  }

  const sha256 = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  if (sha256 !== manifest.database.sha256) {
    throw new RecoveryInputError(
      `--backup ${file} fails its checksum (sha256 ${sha256.slice(0, 16)}…, manifest says ${manifest.database.sha256.slice(0, 16)}…): the file was altered or damaged; use another copy`,
    );
  }
  return manifest;
}
