import { QueryTypes, type Transaction } from 'sequelize';

import { problems } from '../http/problem';
import { listRotations } from '../keys/rotation-records';
import type { Database } from '../platform/database';
import {
  countTenantDataKeysBelow,
  listTenantKeyVersions,
  type TenantKeyVersion,
} from './key-versions';

/**
 * Sets the minimum decryption version of a project's tenant key: versions
 * below it become retired, and a data key still under one opens nothing.
 * Rejected with 404 for an unknown project, with 400 above the active version or below
 * a version already retired, and with 409 while any data key of the project
 * is still wrapped under a version below `minimum`. Retired keys stay on the
 * customer token or in their rows, so a later rotation can still rewrap a
 * data key that a backup restore brought back. Runs in the caller's write
 * transaction.
 */
export async function setTenantMinimumVersion(
  database: Database,
  projectId: string,
  minimum: number,
  transaction: Transaction,
): Promise<TenantKeyVersion[]> {
  await requireProject(database, projectId, transaction);
  const versions = await listTenantKeyVersions(database, projectId, transaction);
  const active = versions.find((version) => version.state === 'active');
  if (!active)
    throw new Error(`project_key_versions has no active version for project ${projectId}`);

  if (minimum > active.version) {
    throw problems.invalidRequest('The minimum decryption version is invalid.', [
      {
        field: 'minimumVersion',
        message: `must be at most the active tenant key version ${active.version}`,
      },
    ]);
  }
  const retired = versions.filter((version) => version.state === 'retired');
  const lowestOpen = Math.max(0, ...retired.map((version) => version.version)) + 1;
  if (minimum < lowestOpen) {
    throw problems.invalidRequest('The minimum decryption version is invalid.', [
      {
        field: 'minimumVersion',
        message: `must be at least ${lowestOpen}, because versions below it are already retired and cannot be used again`,
      },
    ]);
  }

  const remaining = await countTenantDataKeysBelow(database, projectId, minimum, transaction);
  if (remaining > 0) {
    const [running] = await listRotations(
      database,
      { state: 'running', limit: 1, projectId },
      transaction,
    );
    const next = running
      ? `The rotation ${running.id} still has them to move (${running.done} of ${running.total} done): wait for it, or if nothing runs it (a rotation started by \`appliancectl keys rotate\` without --wait), finish it with POST /api/v1/keys/rotations/${running.id}/resume or \`appliancectl keys rewrap ${running.id}\`.`
      : `Rotate the project key (POST /api/v1/projects/${projectId}/key/rotate) to rewrap them.`;
    throw problems.conflict(
      `Retiring the tenant key versions of project ${projectId} below ${minimum} was rejected: ${remaining} data keys are still wrapped under them. ${next} Then retry.`,
    );
  }

  await database.sequelize.query(
    `UPDATE project_key_versions SET state = 'retired', retired_at = :now
     WHERE project_id = :projectId AND version < :minimum AND state <> 'retired'`,
    { transaction, replacements: { projectId, minimum, now: new Date().toISOString() } },
  );
  return listTenantKeyVersions(database, projectId, transaction);
}

async function requireProject(
  database: Database,
  projectId: string,
  transaction: Transaction,
): Promise<void> {
  const [project] = await database.sequelize.query<{ id: string }>(
    'SELECT id FROM projects WHERE id = :projectId',
    { type: QueryTypes.SELECT, transaction, replacements: { projectId } },
  );
  if (!project) throw problems.notFound(`Project ${projectId}`);
}
