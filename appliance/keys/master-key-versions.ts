import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { Database } from '../platform/database';
import { ProblemError } from '../http/problem';

/**
 * State of a master key version: `active` wraps new data keys (exactly one
 * version), `decrypt-only` still unwraps data keys wrapped before a rotation,
 * and `retired` unwraps nothing for reads. A retired version stays on the
 * token, so a rewrap can still move a data key restored from an old backup.
 */
export type MasterKeyState = 'active' | 'decrypt-only' | 'retired';

/** One row of key_versions. */
export interface MasterKeyVersion {
  version: number;
  /** RFC 7512 PKCS#11 URI of the token object. */
  keyUri: string;
  state: MasterKeyState;
  createdAt: string;
  /** User name, `cli:<os user>`, `scheduler`, or `token-setup` for version 1. */
  createdBy: string;
  retiredAt: string | null;
}

interface VersionRow {
  version: number;
  key_uri: string;
  state: MasterKeyState;
  created_at: string;
  created_by: string;
  retired_at: string | null;
}

/**
 * Records version 1, the master key that token set-up made, unless
 * key_versions already has rows. Runs at every start.
 */
export async function recordFirstMasterKeyVersion(
  database: Database,
  keys: Pick<KeyProvider, 'masterKeyUri'>,
  transaction?: Transaction,
): Promise<void> {
  const insert = (t: Transaction) =>
    database.sequelize.query(
      `INSERT INTO key_versions (version, key_uri, state, created_at, created_by)
       SELECT 1, :uri, 'active', :now, 'token-setup' WHERE NOT EXISTS (SELECT 1 FROM key_versions)`,
      { transaction: t, replacements: { uri: keys.masterKeyUri, now: new Date().toISOString() } },
    );
  if (transaction) await insert(transaction);
  else await database.write(insert);
}

/** Lists the master key versions, oldest first. */
export async function listMasterKeyVersions(
  database: Database,
  transaction?: Transaction,
): Promise<MasterKeyVersion[]> {
  const rows = await database.sequelize.query<VersionRow>(
    'SELECT * FROM key_versions ORDER BY version',
    { type: QueryTypes.SELECT, transaction },
  );
  return rows.map((row) => ({
    version: row.version,
    keyUri: row.key_uri,
    state: row.state,
    createdAt: row.created_at,
    createdBy: row.created_by,
    retiredAt: row.retired_at,
  }));
}

/**
 * Returns the active master key version. Before key_versions has a row (a
 * vault opened without the key inventory) that is version 1.
 */
export async function activeMasterKey(
  database: Database,
  keys: Pick<KeyProvider, 'masterKeyUri'>,
  transaction?: Transaction,
): Promise<{ version: number; keyUri: string }> {
  const rows = await database.sequelize.query<{ version: number; key_uri: string }>(
    `SELECT version, key_uri FROM key_versions WHERE state = 'active' ORDER BY version DESC LIMIT 1`,
    { type: QueryTypes.SELECT, transaction },
  );
  return rows.length
    ? { version: rows[0].version, keyUri: rows[0].key_uri }
    : { version: 1, keyUri: keys.masterKeyUri };
}

/** Counts the data keys still wrapped under a master key version below `version`. */
export async function countDataKeysBelow(
  database: Database,
  version: number,
  transaction?: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<{ count: number }>(
    'SELECT COUNT(*) AS count FROM prompt_data_keys WHERE master_key_version < :version',
    { type: QueryTypes.SELECT, transaction, replacements: { version } },
  );
  return rows[0]?.count ?? 0;
}

/** Builds the problem for a data key whose master key version is retired or unknown. */
export function masterKeyRetiredProblem(promptId: string, version: number): ProblemError {
  return new ProblemError(
    409,
    'master_key_retired',
    'Master key version retired',
    `The data key of prompt ${promptId} is wrapped under master key version ${version}, which is retired or not recorded, so the prompt cannot be opened. Rewrap it under the active version with \`appliancectl keys rewrap\` and retry.`,
  );
}
