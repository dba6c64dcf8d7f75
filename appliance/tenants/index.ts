import { TenantKeyRing } from '../../hsm/tenant-keys';
import type { KeyProvider } from '../../hsm/key-provider';
import type { RouteSpec } from '../http/route';
import type { TenantKeySource } from '../keys/service';
import type { ApplianceConfig } from '../platform/config';
import type { Database } from '../platform/database';
import { EnvelopeEncryption, type DataKeyCreatedHook } from '../vault/envelope';
import { TenantKeyRotation } from './key-rotation';
import { projectRoutes } from './routes';
import { rotateTenantKeysOnSchedule } from './scheduled-rotation';
import { ProjectService } from './service';

/** Projects with their customer-managed keys, and the envelope encryption that uses them. */
export interface Tenants {
  projects: ProjectService;
  /** Rotation of each project's tenant master key. */
  rotation: TenantKeyRotation;
  /** The tenant keys for the key inventory (KeyInventory.attachTenants). */
  keySource: TenantKeySource;
  /** The vault's envelope encryption, choosing each prompt's wrapping key by its project. */
  encryption: EnvelopeEncryption;
  routes: RouteSpec[];
  /** Logs out of every customer token; call after the key inventory stopped the rewrap jobs. */
  close(): void;
}

/**
 * Opens the tenant key ring on the appliance's PKCS#11 module, loads the
 * projects, builds the vault encryption over both and resumes tenant key
 * rotations left running unless `options.resume` is false (appliancectl,
 * which runs one rewrap in the foreground). Call after the database is migrated.
 */
export async function openTenants(
  config: Pick<ApplianceConfig, 'hsm'>,
  database: Database,
  keys: KeyProvider,
  onDataKeyCreated?: DataKeyCreatedHook,
  options: { resume?: boolean } = {},
): Promise<Tenants> {
  const ring = new TenantKeyRing(config.hsm);
  try {
    const projects = await ProjectService.open(database, ring, keys);
    const encryption = new EnvelopeEncryption(database, keys, {}, onDataKeyCreated, projects);
    projects.onKeyRevoked = (projectId) => encryption.purgeProject(projectId);

    const rotation = new TenantKeyRotation(database, projects);
    if (options.resume !== false) await rotation.resumeUnfinished();

    return {
      projects,
      rotation,
      keySource: {
        listKeys: (nextRotation) => projects.listKeys(nextRotation),
        rotateOnSchedule: (audit) =>
          rotateTenantKeysOnSchedule({ database, projects, rotation, audit }),
        startRewrap: (rotationId) => rotation.startRewrap(rotationId),
        stop: () => rotation.stop(),
      },
      encryption,
      routes: projectRoutes(database, projects, rotation),
      close: () => ring.close(),
    };
  } catch (error) {
    ring.close();
    throw error;
  }
}
