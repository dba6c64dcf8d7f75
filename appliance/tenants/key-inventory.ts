import { QueryTypes } from 'sequelize';

import { parsePkcs11Uri } from '../../hsm/pkcs11-uri';
import { TenantKeyUnavailableError } from '../../hsm/tenant-keys';
import type { KeyInventoryItem, KeyState } from '../keys/inventory';
import type { Database } from '../platform/database';
import { listTenantKeyVersions } from './key-versions';
import type { KeyedProject, ProjectService } from './service';

/** Algorithm of every tenant key version, as the inventory names it. */
const tenantKeyAlgorithm = 'AES-256 (CKM_AES_KEY_WRAP)';

/**
 * Lists one inventory item (class `tenant`) per tenant key version of each
 * project, with its live state and how many data keys it wraps. An
 * appliance tenant key's location is its project_key_versions row, and
 * `masterKeyUri` names the master key version that wraps it. A customer
 * key's location is its PKCS#11 URI: a revoked project's versions are all
 * `revoked`, and a version whose key or token cannot be found is
 * `destroyed`. Active versions carry `nextRotation`, the next run of
 * TENANT_KEY_ROTATION_CRON, which is null when that schedule is off.
 */
export async function listTenantKeys(
  database: Database,
  projects: ProjectService,
  nextRotation: Date | null = null,
): Promise<KeyInventoryItem[]> {
  const counts = await database.sequelize.query<{
    project_id: string;
    tenant_key_version: number;
    count: number;
  }>(
    `SELECT project_id, tenant_key_version, COUNT(*) AS count FROM project_data_keys
     GROUP BY project_id, tenant_key_version`,
    { type: QueryTypes.SELECT },
  );
  const countOf = (projectId: string, version: number) =>
    counts.find((row) => row.project_id === projectId && row.tenant_key_version === version)
      ?.count ?? 0;

  // Versions come from the database, so a rotation made by appliancectl shows at once.
  const allVersions = await listTenantKeyVersions(database);

  const items: KeyInventoryItem[] = [];
  for (const project of projects.keyedProjects()) {
    const versions = allVersions.filter((version) => version.projectId === project.id);
    const newest = versions[versions.length - 1];
    const lastRotated = newest && newest.version > 1 ? newest.createdAt : null;

    for (const version of versions) {
      const state =
        project.keyMode === 'appliance'
          ? version.state
          : stateOf(projects, project, version.keyUri, version.state);
      items.push({
        keyClass: 'tenant',
        location: version.keyUri,
        label: parsePkcs11Uri(version.keyUri)?.object,
        ...(version.masterKeyUri ? { masterKeyUri: version.masterKeyUri } : {}),
        algorithm: tenantKeyAlgorithm,
        keyVersion: version.version,
        created: {
          createdAt: version.createdAt,
          source: version.version === 1 ? 'project-creation' : 'rotation',
        },
        state,
        dependents: { type: 'data-key', count: countOf(project.id, version.version) },
        projectId: project.id,
        projectName: project.name,
        lastRotated,
        nextRotation: state === 'active' ? (nextRotation?.toISOString() ?? null) : null,
      });
    }
  }
  return items;
}

function stateOf(
  projects: ProjectService,
  project: KeyedProject,
  keyUri: string,
  recorded: 'active' | 'decrypt-only' | 'retired',
): KeyState {
  if (project.revoked) return 'revoked';
  try {
    projects.checkKey(keyUri);
  } catch (error) {
    if (!(error instanceof TenantKeyUnavailableError)) throw error;
    // NOTE: a rejected PIN or a session lost since start also lands here, although the key may still exist.
    return error.reason === 'disconnected' ? 'revoked' : 'destroyed';
  }
  return recorded;
}
