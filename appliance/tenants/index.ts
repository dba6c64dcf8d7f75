import { TenantKeyRing } from '../../hsm/tenant-keys';
import type { KeyProvider } from '../../hsm/key-provider';
import type { RouteSpec } from '../http/route';
import type { ApplianceConfig } from '../platform/config';
import type { Database } from '../platform/database';
import { EnvelopeEncryption, type DataKeyCreatedHook } from '../vault/envelope';
import { projectRoutes } from './routes';
import { ProjectService } from './service';

/** Projects with their customer-managed keys, and the envelope encryption that uses them. */
export interface Tenants {
  projects: ProjectService;
  /** The vault's envelope encryption, choosing each prompt's wrapping key by its project. */
  encryption: EnvelopeEncryption;
  routes: RouteSpec[];
  /** Logs out of every customer token; call before the key provider closes. */
  close(): void;
}

/**
 * Opens the tenant key ring on the appliance's PKCS#11 module, loads the
 * projects and builds the vault encryption over both. Call after the
 * database is migrated.
 */
export async function openTenants(
  config: Pick<ApplianceConfig, 'hsm'>,
  database: Database,
  keys: KeyProvider,
  onDataKeyCreated?: DataKeyCreatedHook,
): Promise<Tenants> {
  const ring = new TenantKeyRing(config.hsm);
  try {
    const projects = await ProjectService.open(database, ring, keys.masterKeyUri);
    const encryption = new EnvelopeEncryption(database, keys, {}, onDataKeyCreated, projects);
    projects.onKeyRevoked = (projectId) => encryption.purgeProject(projectId);

    return {
      projects,
      encryption,
      routes: projectRoutes(projects),
      close: () => ring.close(),
    };
  } catch (error) {
    ring.close();
    throw error;
  }
}
