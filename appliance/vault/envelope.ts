import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import { HsmError } from '../../hsm/errors';
import type { KeyProvider } from '../../hsm/key-provider';
import {
  activeMasterKey,
  masterKeyRetiredProblem,
  type MasterKeyState,
} from '../keys/master-key-versions';
import type { Database } from '../platform/database';
import { tenantKeyRetiredProblem, type TenantKeyVersionState } from '../tenants/key-versions';
import { logger } from '../platform/logger';
import { DataKeyCache, type DataKeyCacheOptions } from './data-key-cache';
import {
  dataKeyLength,
  IntegrityError,
  openField,
  sealField,
  type FieldLocation,
} from './field-cipher';

/** Seals and opens the content fields of one prompt. */
export interface PromptSealer {
  /** Version of the prompt's data key that this sealer uses; stored next to each sealed row. */
  readonly keyVersion: number;
  seal(location: FieldLocation, plaintext: string): Buffer;
  /** Throws IntegrityError when `sealed` does not authenticate at `location`. */
  open(location: FieldLocation, sealed: Buffer): string;
}

/** The data key of a new prompt, made but not yet stored. */
export interface NewPromptKey {
  sealer: PromptSealer;
  /** Stores the wrapped key in the prompt's create transaction, after the prompt row. */
  save(transaction: Transaction): Promise<void>;
}

/**
 * Protection of prompt content in the vault. The runtime always uses
 * EnvelopeEncryption; the benchmark passes a plaintext one to measure the
 * cost of encryption.
 */
export interface PromptEncryption {
  /** Makes the data key of a new prompt; `projectId` picks the key that wraps it. */
  createKey(promptId: string, projectId?: string): NewPromptKey;
  /** Throws IntegrityError when the stored key is missing or fails to unwrap. */
  sealerFor(promptId: string, keyVersion: number, transaction?: Transaction): Promise<PromptSealer>;
  close(): void;
}

/**
 * Called in a new prompt's create transaction with its plaintext data key,
 * after the wrapped key is stored; a throw rolls the creation back. The
 * runtime uses it to escrow data keys for disaster recovery.
 */
export type DataKeyCreatedHook = (
  promptId: string,
  keyVersion: number,
  dataKey: Buffer,
  transaction: Transaction,
) => Promise<void>;

/** A tenant key version as envelope encryption hands it to TenantKeyAccess. */
export interface TenantKeyRef {
  /**
   * PKCS#11 URI of a customer-managed key, or the location of an appliance
   * tenant key (`sqlite:project_key_versions/<project id>/<version>`).
   */
  keyUri: string;
  /** For an appliance tenant key: the key wrapped by the master key version at masterKeyUri; null otherwise. */
  wrappedKey: Buffer | null;
  masterKeyUri: string | null;
}

/** Builds a TenantKeyRef from the columns of a project_key_versions row, as SQLite returns them. */
export function tenantKeyRef(
  keyUri: string,
  wrappedKey: Buffer | null,
  masterKeyUri: string | null,
): TenantKeyRef {
  return { keyUri, wrappedKey: wrappedKey && Buffer.from(wrappedKey), masterKeyUri };
}

/**
 * Tenant keys of projects, as envelope encryption uses them: a key on the
 * customer's token for a customer-keyed project, or a key wrapped by the
 * appliance master key for an appliance-keyed one. The tenants domain
 * implements it; every method throws a ProblemError (tenant_key_unavailable)
 * when a customer key is revoked or destroyed.
 */
export interface TenantKeyAccess {
  /**
   * Returns the key URI or location of the active tenant key of
   * `projectId`. Throws a 400 problem naming `projectId` when no such
   * project exists.
   */
  keyUriFor(projectId: string): string;
  /** Wraps a data key under `key`, which must be a tenant key version of `projectId`. */
  wrap(projectId: string, key: TenantKeyRef, dataKey: Buffer): Buffer;
  /** Unwraps a data key stored as wrapped by `key`, which must be a usable tenant key version of `projectId`. */
  unwrap(projectId: string, key: TenantKeyRef, wrapped: Buffer): Buffer;
  /** Checks that the tenant key of `projectId` is still usable, before a cached data key is used. */
  check(projectId: string): void;
}

/** PKCS#11 mechanism that wraps data keys (RFC 3394), recorded with each wrapped key. */
export const wrapMechanism = 'CKM_AES_KEY_WRAP';

/**
 * Data-key version given to new prompts. A master key rotation rewraps data
 * keys but keeps them, so this version does not change with it.
 */
const currentKeyVersion = 1;

interface TenantDataKeyRow {
  project_id: string;
  wrapped_key: Buffer;
  tenant_key_uri: string;
  tenant_key_version: number;
  tenant_wrapped_key: Buffer | null;
  tenant_master_key_uri: string | null;
  version_state: TenantKeyVersionState | null;
}

interface DataKeyRow {
  wrapped_key: Buffer;
  master_key_uri: string;
  master_key_version: number;
  /** URI recorded in key_versions for master_key_version; null when key_versions has no row. */
  version_uri: string | null;
  version_state: MasterKeyState | null;
}

/**
 * Envelope encryption: each prompt has its own random AES-256 data key. A
 * prompt in a project has its data key wrapped by the project's tenant key:
 * one wrapped by the HSM master key, or one on the customer's token. A
 * prompt outside any project has its data key wrapped by the master key
 * directly. Unwrapped data keys are kept in a DataKeyCache so that reads do
 * not call the HSM each time.
 */
export class EnvelopeEncryption implements PromptEncryption {
  private readonly cache: DataKeyCache;

  /**
   * Unwrapped data keys of customer-keyed projects, one cache per project,
   * so revoking a project's key can zero and drop exactly its keys.
   */
  private readonly tenantCaches = new Map<string, DataKeyCache>();

  /** Project of each cache id held in tenantCaches. */
  private readonly tenantCacheProjects = new Map<string, string>();

  constructor(
    private readonly database: Database,
    private readonly keys: KeyProvider,
    private readonly cacheOptions: DataKeyCacheOptions = {},
    private readonly onDataKeyCreated?: DataKeyCreatedHook,
    private readonly tenants?: TenantKeyAccess,
  ) {
    this.cache = new DataKeyCache(cacheOptions);
  }

  createKey(promptId: string, projectId?: string): NewPromptKey {
    const dataKey = crypto.randomBytes(dataKeyLength);

    return {
      sealer: new DataKeySealer(dataKey, currentKeyVersion),
      save: async (transaction) => {
        if (projectId !== undefined) {
          await this.saveInProject(promptId, projectId, dataKey, transaction);
          return;
        }

        // The active master key version is read in the write transaction
        // that stores the wrapped key, so a rotation committed by another
        // writer cannot leave this key behind under the previous version.
        const master = await activeMasterKey(this.database, this.keys, transaction);
        const wrapped = this.keys.wrapDataKey(dataKey, master.keyUri);

        await this.database.sequelize.query(
          `INSERT INTO prompt_data_keys (prompt_id, key_version, wrapped_key, wrap_mechanism, master_key_uri,
             master_key_version, created_at)
           VALUES (:promptId, :keyVersion, :wrapped, :mechanism, :masterKeyUri, :masterKeyVersion, :createdAt)`,
          {
            transaction,
            replacements: {
              promptId,
              keyVersion: currentKeyVersion,
              wrapped,
              mechanism: wrapMechanism,
              masterKeyUri: master.keyUri,
              masterKeyVersion: master.version,
              createdAt: new Date().toISOString(),
            },
          },
        );
        await this.onDataKeyCreated?.(promptId, currentKeyVersion, dataKey, transaction);
        transaction.afterCommit(() =>
          this.cache.set(cacheId(promptId, currentKeyVersion), dataKey),
        );
      },
    };
  }

  async sealerFor(
    promptId: string,
    keyVersion: number,
    transaction?: Transaction,
  ): Promise<PromptSealer> {
    const id = cacheId(promptId, keyVersion);
    // A cached key skips the master key state check below. That is safe
    // because a rewrap keeps the data key itself, and retiring a version is
    // refused while any data key is still wrapped under it.
    const cached = this.cache.get(id);
    if (cached) return new DataKeySealer(cached, keyVersion);

    const tenantKey = await this.tenantDataKey(promptId, keyVersion, transaction);
    if (tenantKey) return new DataKeySealer(tenantKey, keyVersion);

    const rows = await this.database.sequelize.query<DataKeyRow>(
      `SELECT d.wrapped_key, d.master_key_uri, d.master_key_version,
         v.key_uri AS version_uri, v.state AS version_state
       FROM prompt_data_keys d LEFT JOIN key_versions v ON v.version = d.master_key_version
       WHERE d.prompt_id = :promptId AND d.key_version = :keyVersion`,
      { type: QueryTypes.SELECT, transaction, replacements: { promptId, keyVersion } },
    );
    const part = `data key version ${keyVersion}`;
    if (!rows.length) throw new IntegrityError(promptId, `${part} (missing)`);

    // Fail closed: a retired master key version, or one key_versions does
    // not record, opens nothing until a rewrap moves the data key.
    const row = rows[0];
    const recorded = row.version_uri !== null || row.master_key_version === 1;
    if (row.version_state === 'retired' || !recorded) {
      throw masterKeyRetiredProblem(promptId, row.master_key_version);
    }

    const dataKey = this.unwrap(promptId, part, row);
    this.cache.set(id, dataKey);
    return new DataKeySealer(dataKey, keyVersion);
  }

  /** Returns how many unwrapped data keys of `projectId` the cache holds. */
  cachedProjectKeys(projectId: string): number {
    return this.tenantCaches.get(projectId)?.size ?? 0;
  }

  /** Zeroes and drops the cached data keys of `projectId`; called when its tenant key is revoked. */
  purgeProject(projectId: string): void {
    this.tenantCaches.get(projectId)?.clear();
    this.tenantCaches.delete(projectId);
    for (const [id, project] of this.tenantCacheProjects) {
      if (project === projectId) this.tenantCacheProjects.delete(id);
    }
  }

  close(): void {
    this.cache.clear();
    for (const cache of this.tenantCaches.values()) cache.clear();
    this.tenantCaches.clear();
    this.tenantCacheProjects.clear();
  }

  /**
   * Records the prompt in `projectId` and stores its data key wrapped by the
   * project's active tenant key. Such a data key is neither escrowed nor
   * cached at creation: a customer-keyed one must leave no copy that
   * survives revoking or destroying the customer's key, and an
   * appliance-keyed one is recovered through its escrowed tenant key.
   */
  private async saveInProject(
    promptId: string,
    projectId: string,
    dataKey: Buffer,
    transaction: Transaction,
  ): Promise<void> {
    if (!this.tenants) throw new Error('Prompts in projects need the tenant key access.');

    const keyUri = this.tenants.keyUriFor(projectId);
    await this.database.sequelize.query(
      'INSERT INTO project_prompts (prompt_id, project_id) VALUES (:promptId, :projectId)',
      { transaction, replacements: { promptId, projectId } },
    );

    // The active version is read in this write transaction, like the
    // appliance master key's, so a rotation by another process applies at once.
    const tenantKey = await activeTenantKey(this.database, projectId, keyUri, transaction);
    const wrapped = this.tenants.wrap(projectId, tenantKey, dataKey);
    await this.database.sequelize.query(
      `INSERT INTO project_data_keys (prompt_id, key_version, project_id, wrapped_key, wrap_mechanism,
         tenant_key_uri, tenant_key_version, created_at)
       VALUES (:promptId, :keyVersion, :projectId, :wrapped, :mechanism, :keyUri, :tenantKeyVersion,
         :createdAt)`,
      {
        transaction,
        replacements: {
          promptId,
          keyVersion: currentKeyVersion,
          projectId,
          wrapped,
          mechanism: wrapMechanism,
          keyUri: tenantKey.keyUri,
          tenantKeyVersion: tenantKey.version,
          createdAt: new Date().toISOString(),
        },
      },
    );
  }

  /**
   * Returns the data key of a prompt in a project, or undefined when the
   * prompt's key is not wrapped by a tenant key. A cached key is used only
   * after the tenant key is found usable, so a destroyed customer key stops
   * reads at once.
   */
  private async tenantDataKey(
    promptId: string,
    keyVersion: number,
    transaction?: Transaction,
  ): Promise<Buffer | undefined> {
    const id = cacheId(promptId, keyVersion);
    const cachedProject = this.tenantCacheProjects.get(id);
    if (cachedProject !== undefined && this.tenants) {
      this.tenants.check(cachedProject);
      const cached = this.tenantCaches.get(cachedProject)?.get(id);
      if (cached) return cached;
    }

    // The unwrap key comes from project_key_versions where it records the
    // row's version; the service also checks it is a key of the row's project.
    const rows = await this.database.sequelize.query<TenantDataKeyRow>(
      `SELECT d.project_id, d.wrapped_key, COALESCE(v.key_uri, d.tenant_key_uri) AS tenant_key_uri,
         d.tenant_key_version, v.state AS version_state, v.wrapped_key AS tenant_wrapped_key,
         v.master_key_uri AS tenant_master_key_uri
       FROM project_data_keys d LEFT JOIN project_key_versions v
         ON v.project_id = d.project_id AND v.version = d.tenant_key_version
       WHERE d.prompt_id = :promptId AND d.key_version = :keyVersion`,
      { type: QueryTypes.SELECT, transaction, replacements: { promptId, keyVersion } },
    );
    if (!rows.length) return undefined;
    if (!this.tenants) throw new Error('Prompts in projects need the tenant key access.');

    const row = rows[0];
    if (row.version_state === 'retired') {
      throw tenantKeyRetiredProblem(promptId, row.project_id, row.tenant_key_version);
    }
    let dataKey: Buffer;
    try {
      const tenantKey = tenantKeyRef(
        row.tenant_key_uri,
        row.tenant_wrapped_key,
        row.tenant_master_key_uri,
      );
      dataKey = this.tenants.unwrap(row.project_id, tenantKey, Buffer.from(row.wrapped_key));
    } catch (error) {
      if (!(error instanceof HsmError) || error.code !== 'hsm_unwrap_failed') throw error;

      logger.error(
        { promptId, projectId: row.project_id, tenantKeyUri: row.tenant_key_uri },
        'prompt data key failed to unwrap under the tenant key',
      );
      throw new IntegrityError(promptId, `data key version ${keyVersion}`, { cause: error });
    }

    let cache = this.tenantCaches.get(row.project_id);
    if (!cache) {
      cache = new DataKeyCache(this.cacheOptions);
      this.tenantCaches.set(row.project_id, cache);
    }
    cache.set(id, dataKey);
    this.tenantCacheProjects.set(id, row.project_id);
    return dataKey;
  }

  private unwrap(promptId: string, part: string, row: DataKeyRow): Buffer {
    try {
      // The URI comes from key_versions, not from the data-key row, so an
      // edited row cannot point the unwrap at another key.
      return this.keys.unwrapDataKey(
        Buffer.from(row.wrapped_key),
        row.version_uri ?? this.keys.masterKeyUri,
      );
    } catch (error) {
      if (!(error instanceof HsmError) || error.code !== 'hsm_unwrap_failed') throw error;

      // A key wrapped under another master key fails the same RFC 3394 check as an altered one.
      logger.error(
        {
          promptId,
          storedMasterKeyUri: row.master_key_uri,
          masterKeyVersion: row.master_key_version,
          masterKeyUri: row.version_uri ?? this.keys.masterKeyUri,
          hsmCode: error.code,
        },
        'prompt data key failed to unwrap',
      );
      throw new IntegrityError(promptId, part, { cause: error });
    }
  }
}

/**
 * Returns the active tenant key version of `projectId` from
 * project_key_versions, or version 1 at `fallbackUri` when the table has no
 * row for the project.
 */
async function activeTenantKey(
  database: Database,
  projectId: string,
  fallbackUri: string,
  transaction: Transaction,
): Promise<TenantKeyRef & { version: number }> {
  const rows = await database.sequelize.query<{
    version: number;
    key_uri: string;
    wrapped_key: Buffer | null;
    master_key_uri: string | null;
  }>(
    `SELECT version, key_uri, wrapped_key, master_key_uri FROM project_key_versions
     WHERE project_id = :projectId AND state = 'active' ORDER BY version DESC LIMIT 1`,
    { type: QueryTypes.SELECT, transaction, replacements: { projectId } },
  );
  if (!rows.length) return { version: 1, ...tenantKeyRef(fallbackUri, null, null) };

  const row = rows[0];
  return {
    version: row.version,
    ...tenantKeyRef(row.key_uri, row.wrapped_key, row.master_key_uri),
  };
}

class DataKeySealer implements PromptSealer {
  constructor(
    private readonly dataKey: Buffer,
    readonly keyVersion: number,
  ) {}

  seal(location: FieldLocation, plaintext: string): Buffer {
    return sealField(this.dataKey, location, plaintext);
  }

  open(location: FieldLocation, sealed: Buffer): string {
    return openField(this.dataKey, location, sealed);
  }
}

function cacheId(promptId: string, keyVersion: number): string {
  return `${promptId}/${keyVersion}`;
}
