import crypto from 'node:crypto';

import type { Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import { activeMasterKey } from '../keys/master-key-versions';
import type { Database } from '../platform/database';
import { escrowTenantKey } from './tenant-key-escrow';

/** Length of a tenant key: AES-256. */
const tenantKeyLength = 32;

/** Prefix of the location of every appliance tenant key version. */
const locationPrefix = 'sqlite:project_key_versions/';

/**
 * Location of version `version` of the tenant key of an appliance-keyed
 * project: the project_key_versions row that stores it wrapped. It takes
 * the place of a PKCS#11 URI in key_uri and in the key inventory, because
 * the key is not a token object.
 */
export function tenantKeyLocation(projectId: string, version: number): string {
  return `${locationPrefix}${projectId}/${version}`;
}

/** Reports whether `keyUri` is the location of a tenant key version of `projectId`. */
export function isTenantKeyLocationOf(keyUri: string, projectId: string): boolean {
  const prefix = `${locationPrefix}${projectId}/`;
  return keyUri.startsWith(prefix) && /^[1-9][0-9]*$/.test(keyUri.slice(prefix.length));
}

/** A new appliance tenant key version, wrapped and ready to store in project_key_versions. */
export interface NewApplianceTenantKey {
  keyUri: string;
  wrappedKey: Buffer;
  masterKeyUri: string;
}

/**
 * Generates version `version` of the tenant key of an appliance-keyed
 * project and wraps it under the active master key version, read in the
 * caller's write transaction so a concurrent rotation cannot leave it
 * behind. The key is escrowed under the recovery key in the same
 * transaction, then its plaintext is overwritten. It comes from Node's
 * CSPRNG rather than the token, because escrow needs its value once. After
 * that the token unwraps it into a session object that nothing can read
 * (see KeyProvider.wrapDataKeyUnder).
 */
export async function createApplianceTenantKey(
  database: Database,
  keys: KeyProvider,
  projectId: string,
  version: number,
  transaction: Transaction,
): Promise<NewApplianceTenantKey> {
  const tenantKey = crypto.randomBytes(tenantKeyLength);
  try {
    const master = await activeMasterKey(database, keys, transaction);
    const wrappedKey = keys.wrapDataKey(tenantKey, master.keyUri);
    await escrowTenantKey(database, projectId, version, tenantKey, transaction);
    return {
      keyUri: tenantKeyLocation(projectId, version),
      wrappedKey,
      masterKeyUri: master.keyUri,
    };
  } finally {
    tenantKey.fill(0);
  }
}
