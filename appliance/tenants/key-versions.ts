import { QueryTypes, type Transaction } from 'sequelize';

import { ProblemError } from '../http/problem';
import type { Database } from '../platform/database';

/**
 * State of a tenant master key version, as for the appliance master key:
 * `active` wraps new data keys, `decrypt-only` unwraps data keys wrapped
 * before a rotation, `retired` unwraps nothing.
 */
export type TenantKeyVersionState = 'active' | 'decrypt-only' | 'retired';

/** One row of project_key_versions. */
export interface TenantKeyVersion {
  projectId: string;
  version: number;
  /**
   * RFC 7512 PKCS#11 URI of the key on the customer token, or for an
   * appliance-keyed project the location of the row that stores it wrapped
   * (see tenantKeyLocation()).
   */
  keyUri: string;
  /** For an appliance-keyed project: the master key version that wraps this tenant key; null on a customer token. */
  masterKeyUri: string | null;
  state: TenantKeyVersionState;
  createdAt: string;
  /** User name, `cli:<os user>`, or the user id of the project's creator for version 1. */
  createdBy: string;
  retiredAt: string | null;
}

interface VersionRow {
  project_id: string;
  version: number;
  key_uri: string;
  master_key_uri: string | null;
  state: TenantKeyVersionState;
  created_at: string;
  created_by: string;
  retired_at: string | null;
}

/** Lists the tenant key versions of every project, or of `projectId`, oldest first. */
export async function listTenantKeyVersions(
  database: Database,
  projectId?: string,
  transaction?: Transaction,
): Promise<TenantKeyVersion[]> {
  const where = projectId === undefined ? '' : 'WHERE project_id = :projectId';
  const rows = await database.sequelize.query<VersionRow>(
    `SELECT project_id, version, key_uri, master_key_uri, state, created_at, created_by, retired_at
     FROM project_key_versions ${where} ORDER BY project_id, version`,
    { type: QueryTypes.SELECT, transaction, replacements: { projectId: projectId ?? null } },
  );
  return rows.map((row) => ({
    projectId: row.project_id,
    version: row.version,
    keyUri: row.key_uri,
    masterKeyUri: row.master_key_uri,
    state: row.state,
    createdAt: row.created_at,
    createdBy: row.created_by,
    retiredAt: row.retired_at,
  }));
}

/** A version to store: an appliance tenant key brings its wrapped bytes and master key URI. */
export type NewTenantKeyVersion = Omit<TenantKeyVersion, 'state' | 'retiredAt' | 'masterKeyUri'> & {
  wrappedKey?: Buffer;
  masterKeyUri?: string;
};

/** Stores a new version as active and makes the previous active version decrypt-only. */
export async function insertActiveTenantKeyVersion(
  database: Database,
  version: NewTenantKeyVersion,
  transaction: Transaction,
): Promise<void> {
  await database.sequelize.query(
    `UPDATE project_key_versions SET state = 'decrypt-only'
     WHERE project_id = :projectId AND state = 'active'`,
    { transaction, replacements: { projectId: version.projectId } },
  );
  await database.sequelize.query(
    `INSERT INTO project_key_versions (project_id, version, key_uri, wrapped_key, master_key_uri, state,
       created_at, created_by)
     VALUES (:projectId, :version, :keyUri, :wrappedKey, :masterKeyUri, 'active', :createdAt, :createdBy)`,
    {
      transaction,
      replacements: {
        ...version,
        wrappedKey: version.wrappedKey ?? null,
        masterKeyUri: version.masterKeyUri ?? null,
      },
    },
  );
}

/** Counts a project's data keys wrapped under a tenant key version below `version`. */
export async function countTenantDataKeysBelow(
  database: Database,
  projectId: string,
  version: number,
  transaction?: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<{ count: number }>(
    `SELECT COUNT(*) AS count FROM project_data_keys
     WHERE project_id = :projectId AND tenant_key_version < :version`,
    { type: QueryTypes.SELECT, transaction, replacements: { projectId, version } },
  );
  return rows[0]?.count ?? 0;
}

/** Builds the problem for a project data key whose tenant key version is retired; 409 Conflict. */
export function tenantKeyRetiredProblem(
  promptId: string,
  projectId: string,
  version: number,
): ProblemError {
  return new ProblemError(
    409,
    'tenant_key_retired',
    'Tenant key version retired',
    `The data key of prompt ${promptId} is wrapped under version ${version} of the tenant key of project ${projectId}, which is retired, so the prompt cannot be opened. Rotate the project key (POST /api/v1/projects/${projectId}/key/rotate) to rewrap it under a new version, then retry.`,
  );
}
