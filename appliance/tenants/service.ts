import crypto from 'node:crypto';
import path from 'node:path';

import { QueryTypes, type Transaction } from 'sequelize';

import { HsmError } from '../../hsm/errors';
import type { KeyProvider, WrappedTenantKey } from '../../hsm/key-provider';
import { parsePkcs11Uri } from '../../hsm/pkcs11-uri';
import {
  TenantKeyUnavailableError,
  tenantKeyVersionLabel,
  type TenantKeyRing,
} from '../../hsm/tenant-keys';
import { problems, ProblemError } from '../http/problem';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import type { TenantKeyAccess, TenantKeyRef } from '../vault/envelope';
import type { Commit } from '../vault/vault';
import type { KeyInventoryItem } from '../keys/inventory';
import {
  createApplianceTenantKey,
  isTenantKeyLocationOf,
  tenantKeyLocation,
} from './appliance-tenant-keys';
import { listTenantKeys } from './key-inventory';
import { insertActiveTenantKeyVersion, type NewTenantKeyVersion } from './key-versions';

/**
 * Owner of the key above a project's tenant key: the appliance (its HSM
 * master key wraps the tenant key) or the customer (the tenant key is the
 * customer's own key on the customer's token).
 */
export type KeyMode = 'appliance' | 'customer';

/**
 * State of a project's key: `active` when usable, `revoked` after
 * POST .../key/revoke, `unavailable` when the customer token or the key on it
 * cannot be found or logged in to (destroyed, removed or wrong PIN).
 */
export type ProjectKeyState = 'active' | 'revoked' | 'unavailable';

/** A project as the API returns it. Contains no PIN, only the path of the customer's PIN file. */
export interface Project {
  id: string;
  name: string;
  keyMode: KeyMode;
  /**
   * The active tenant key, which wraps the project's data keys: its PKCS#11
   * URI on the customer token, or for an appliance-keyed project the
   * location of its wrapped copy (`sqlite:project_key_versions/<id>/<version>`).
   */
  keyUri: string;
  /** For an appliance-keyed project: PKCS#11 URI of the master key version that wraps its active tenant key. */
  masterKeyUri?: string;
  keyState: ProjectKeyState;
  tokenLabel: string | null;
  createdAt: string;
}

export interface NewProject {
  name: string;
  keyMode: KeyMode;
  token?: { label: string; pinFile: string };
}

/** A project as the key inventory and the rotation schedule read it. */
export interface KeyedProject {
  id: string;
  name: string;
  keyMode: KeyMode;
  /** True when the customer revoked the appliance's access to its key; always false for appliance keys. */
  revoked: boolean;
}

interface ProjectRow {
  id: string;
  name: string;
  key_mode: KeyMode;
  token_label: string | null;
  pin_file: string | null;
  key_uri: string | null;
  key_state: 'active' | 'revoked' | null;
  key_state_changed_at: string | null;
  created_by: string;
  created_at: string;
}

/** Builds the problem for a request that needs a tenant key that cannot be used; 423 Locked. */
export function tenantKeyUnavailable(projectId: string, reason: string): ProblemError {
  return new ProblemError(
    423,
    'tenant_key_unavailable',
    'Tenant key unavailable',
    `The customer-managed key of project ${projectId} is unavailable (${reason}), so its prompts can be neither read nor written. The customer restores access with POST /api/v1/projects/${projectId}/key/restore and the PIN file of its token; a destroyed key cannot be restored.`,
  );
}

/**
 * Projects and their tenant keys. An appliance-keyed project's tenant key is
 * stored wrapped by the HSM master key. A customer-keyed project keeps its
 * tenant master key on the customer's own token, and this service logs in to
 * that token at start and on restore and logs out on revoke. Rows are
 * mirrored in memory because wraps and unwraps are synchronous.
 */
export class ProjectService implements TenantKeyAccess {
  private readonly rows = new Map<string, ProjectRow>();

  /** Called after a revoke so that cached data keys of the project stop working at once. */
  onKeyRevoked: (projectId: string) => void = () => {};

  private constructor(
    private readonly database: Database,
    private readonly ring: TenantKeyRing,
    private readonly keys: KeyProvider,
  ) {}

  /**
   * Loads the projects, gives each appliance-keyed project made before
   * tenant keys existed its first tenant key version, and logs in to the
   * token of each active customer key. A token or key that cannot be
   * reached is logged and left unavailable: the appliance starts, and that
   * project's prompts fail closed.
   */
  static async open(
    database: Database,
    ring: TenantKeyRing,
    keys: KeyProvider,
  ): Promise<ProjectService> {
    const service = new ProjectService(database, ring, keys);
    await service.addMissingTenantKeys();
    const rows = await database.sequelize.query<ProjectRow>('SELECT * FROM projects', {
      type: QueryTypes.SELECT,
    });

    for (const row of rows) {
      service.rows.set(row.id, row);
      if (row.key_mode !== 'customer' || row.key_state !== 'active') continue;
      try {
        ring.connect(row.key_uri!, row.pin_file!);
      } catch (error) {
        logger.warn(
          { projectId: row.id, keyUri: row.key_uri, err: error },
          'tenant key of project unavailable at start',
        );
      }
    }
    return service;
  }

  /** Lists every project by name with its key mode. */
  keyedProjects(): KeyedProject[] {
    return [...this.rows.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((row) => ({
        id: row.id,
        name: row.name,
        keyMode: row.key_mode,
        revoked: row.key_state === 'revoked',
      }));
  }

  /** Lists one key inventory item per tenant key version; see listTenantKeys(). */
  listKeys(nextRotation: Date | null = null): Promise<KeyInventoryItem[]> {
    return listTenantKeys(this.database, this, nextRotation);
  }

  /** Checks that the tenant key at `keyUri` is on its token; throws TenantKeyUnavailableError otherwise. */
  checkKey(keyUri: string): void {
    this.ring.check(keyUri);
  }

  /** Returns the active tenant key URI or location of a project whose key can be used now. */
  requireRotatable(projectId: string): string {
    const row = this.rows.get(projectId);
    if (!row) throw problems.notFound(`Project ${projectId}`);
    this.check(projectId);
    return row.key_uri!;
  }

  /**
   * Makes tenant key version `version` of `projectId` for a rotation: a new
   * key on the customer token next to `currentUri`, or a new appliance tenant
   * key wrapped by the active master key and escrowed in `transaction`.
   */
  async createKeyVersion(
    projectId: string,
    currentUri: string,
    version: number,
    transaction: Transaction,
  ): Promise<Pick<NewTenantKeyVersion, 'keyUri' | 'wrappedKey' | 'masterKeyUri'>> {
    const row = this.rows.get(projectId);
    if (row?.key_mode === 'appliance') {
      return createApplianceTenantKey(this.database, this.keys, projectId, version, transaction);
    }
    return {
      keyUri: this.withKey(projectId, () =>
        this.ring.createKeyVersion(currentUri, projectId, version),
      ),
    };
  }

  /**
   * Destroys a customer tenant key version that a failed rotation generated
   * but never recorded. An appliance tenant key exists only in the rolled
   * back row, so nothing is left to destroy.
   */
  destroyUnrecordedVersion(projectId: string, keyUri: string): void {
    if (this.rows.get(projectId)?.key_mode === 'appliance') return;
    this.ring.destroyKey(keyUri);
  }

  /** Moves a data key of `projectId` from tenant key version `from` to `to` inside the token. */
  rewrapDataKey(projectId: string, wrapped: Buffer, from: TenantKeyRef, to: TenantKeyRef): Buffer {
    const fromKey = this.requireOwnKey(projectId, from);
    const toKey = this.requireOwnKey(projectId, to);
    if (fromKey && toKey) return this.keys.rewrapDataKeyBetween(wrapped, fromKey, toKey);
    return this.withKey(projectId, () => this.ring.rewrapDataKey(wrapped, from.keyUri, to.keyUri));
  }

  /**
   * Makes `keyUri` the key that check() probes for `projectId`; call after
   * the rotation committed. Wraps and unwraps read the version from
   * project_key_versions, so a rotation by `appliancectl` in another
   * process takes effect here without this call.
   */
  activateVersion(projectId: string, keyUri: string): void {
    const row = this.rows.get(projectId);
    if (row) this.rows.set(projectId, { ...row, key_uri: keyUri });
  }

  list(): Project[] {
    return [...this.rows.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((row) => this.present(row));
  }

  /**
   * Sets each project's active tenant key and, for an appliance-keyed one,
   * the master key version that wraps it, read from the database so that a
   * rotation by `appliancectl` in another process shows at once.
   */
  async withCurrentKeys<T extends Project>(items: T[]): Promise<T[]> {
    const rows = await this.database.sequelize.query<{
      project_id: string;
      key_uri: string;
      master_key_uri: string | null;
    }>(
      `SELECT project_id, key_uri, master_key_uri FROM project_key_versions WHERE state = 'active'`,
      { type: QueryTypes.SELECT },
    );
    const active = new Map(rows.map((row) => [row.project_id, row]));
    return items.map((item) => {
      const row = active.get(item.id);
      if (!row) return item;
      return row.master_key_uri
        ? { ...item, keyUri: row.key_uri, masterKeyUri: row.master_key_uri }
        : { ...item, keyUri: row.key_uri };
    });
  }

  /** Creates a project; a customer-keyed one gets its tenant master key generated on the customer token. */
  create(input: NewProject, actorId: string, commit: Commit): Promise<Project> {
    return commit(async (transaction) => {
      const existing = await this.database.sequelize.query<{ id: string }>(
        'SELECT id FROM projects WHERE name = :name',
        { type: QueryTypes.SELECT, transaction, replacements: { name: input.name } },
      );
      if (existing.length) {
        throw problems.conflict(`A project named "${input.name}" exists; choose another name.`);
      }

      const now = new Date().toISOString();
      const row: ProjectRow = {
        id: crypto.randomUUID(),
        name: input.name,
        key_mode: input.keyMode,
        token_label: null,
        pin_file: null,
        key_uri: null,
        key_state: null,
        key_state_changed_at: null,
        created_by: actorId,
        created_at: now,
      };
      if (input.keyMode === 'customer') {
        await this.checkTokenFree(input.token!.label, transaction);
        // NOTE: if the insert or its audit record then fails, the generated
        // key stays on the customer token unused.
        row.key_uri = this.generateTenantKey(row.id, input.token!);
        row.token_label = input.token!.label;
        row.pin_file = path.resolve(input.token!.pinFile);
        row.key_state = 'active';
        row.key_state_changed_at = now;
      } else {
        row.key_uri = tenantKeyLocation(row.id, 1);
      }

      await this.database.sequelize.query(
        `INSERT INTO projects (id, name, key_mode, token_label, pin_file, key_uri, key_state,
           key_state_changed_at, created_by, created_at)
         VALUES (:id, :name, :key_mode, :token_label, :pin_file, :key_uri, :key_state,
           :key_state_changed_at, :created_by, :created_at)`,
        { transaction, replacements: { ...row } },
      );
      // After the project row, which the tenant key's escrow row references.
      if (input.keyMode === 'appliance') {
        await this.addFirstApplianceKey(row.id, actorId, transaction);
      } else {
        await insertActiveTenantKeyVersion(
          this.database,
          {
            projectId: row.id,
            version: 1,
            keyUri: row.key_uri,
            createdAt: now,
            createdBy: actorId,
          },
          transaction,
        );
      }
      transaction.afterCommit(() => {
        this.rows.set(row.id, row);
      });
      return this.present(row);
    });
  }

  /**
   * Logs out of the customer token, closes its session and purges the
   * project's cached data keys, then records the revoke. The logout comes
   * first, so a failed write leaves the key unusable rather than usable.
   */
  revoke(projectId: string, commit: Commit): Promise<Project> {
    return commit(async (transaction) => {
      const row = this.requireCustomer(projectId);
      this.ring.disconnect(row.key_uri!);
      this.onKeyRevoked(projectId);

      const updated: ProjectRow = {
        ...row,
        key_state: 'revoked',
        key_state_changed_at: new Date().toISOString(),
      };
      this.rows.set(projectId, updated);
      await this.saveKeyState(updated, transaction);
      logger.warn({ projectId, keyUri: row.key_uri }, 'tenant key revoked');
      return this.present(updated);
    });
  }

  /** Logs in to the customer token again with `pinFile` and marks the key active; a destroyed key stays unavailable. */
  restore(projectId: string, pinFile: string, commit: Commit): Promise<Project> {
    return commit(async (transaction) => {
      const row = this.requireCustomer(projectId);
      try {
        this.ring.connect(row.key_uri!, pinFile);
      } catch (error) {
        if (!(error instanceof TenantKeyUnavailableError)) throw error;
        if (error.reason === 'login_failed') {
          const message =
            'was rejected by the customer token or cannot be read; give the path of its user PIN file';
          throw problems.invalidRequest(`pinFile: ${message}`, [{ field: 'pinFile', message }]);
        }
        throw tenantKeyUnavailable(projectId, reasonText(error.reason));
      }

      const updated: ProjectRow = {
        ...row,
        pin_file: path.resolve(pinFile),
        key_state: 'active',
        key_state_changed_at: new Date().toISOString(),
      };
      await this.saveKeyState(updated, transaction);
      transaction.afterCommit(() => {
        this.rows.set(projectId, updated);
      });
      logger.info({ projectId, keyUri: row.key_uri }, 'tenant key restored');
      return this.present(updated);
    });
  }

  keyUriFor(projectId: string): string {
    const row = this.rows.get(projectId);
    if (!row) {
      throw problems.invalidRequest(
        'projectId: names no project; pick one from GET /api/v1/projects or leave it out',
        [{ field: 'projectId', message: 'names no project' }],
      );
    }
    this.check(projectId);
    return row.key_uri!;
  }

  wrap(projectId: string, key: TenantKeyRef, dataKey: Buffer): Buffer {
    const applianceKey = this.requireOwnKey(projectId, key);
    if (applianceKey) {
      try {
        return this.keys.wrapDataKeyUnder(applianceKey, dataKey);
      } catch (error) {
        if (!(error instanceof HsmError) || error.code !== 'hsm_unwrap_failed') throw error;
        logger.error(
          { projectId, tenantKeyUri: key.keyUri, err: error },
          'tenant key failed to unwrap',
        );
        throw tenantKeyIntegrityProblem(projectId, key.keyUri);
      }
    }
    return this.withKey(projectId, () => this.ring.wrapDataKey(key.keyUri, dataKey));
  }

  unwrap(projectId: string, key: TenantKeyRef, wrapped: Buffer): Buffer {
    const applianceKey = this.requireOwnKey(projectId, key);
    if (applianceKey) return this.keys.unwrapDataKeyUnder(applianceKey, wrapped);
    return this.withKey(projectId, () => this.ring.unwrapDataKey(key.keyUri, wrapped));
  }

  check(projectId: string): void {
    const row = this.requireUsable(projectId);
    if (row.key_mode === 'appliance') return;
    this.withKey(projectId, () => this.ring.check(row.key_uri!));
  }

  private requireCustomer(projectId: string): ProjectRow {
    const row = this.rows.get(projectId);
    if (!row) throw problems.notFound(`Project ${projectId}`);
    if (row.key_mode !== 'customer') {
      throw problems.conflict(
        `Project ${projectId} uses the appliance master key; only a customer-managed key can be revoked, restored or rotated.`,
      );
    }
    return row;
  }

  /**
   * Checks that `key` is a tenant key version of this project, so an edited
   * row cannot point a wrap or unwrap at the key of another project. An
   * appliance-keyed project's key must be at a location of its own, and a
   * customer key on the project's own token. Returns the wrapped appliance
   * tenant key, or undefined for a customer key. Throws hsm_unwrap_failed
   * for a key of another project.
   */
  private requireOwnKey(projectId: string, key: TenantKeyRef): WrappedTenantKey | undefined {
    const row = this.requireUsable(projectId);
    if (row.key_mode === 'appliance') {
      if (
        isTenantKeyLocationOf(key.keyUri, projectId) &&
        key.wrappedKey !== null &&
        key.masterKeyUri !== null
      ) {
        return { wrapped: key.wrappedKey, masterKeyUri: key.masterKeyUri };
      }
      throw notOwnKey(projectId, key.keyUri);
    }

    const locator = parsePkcs11Uri(key.keyUri);
    const base = tenantKeyVersionLabel(projectId, 1);
    const own =
      locator !== undefined &&
      locator.token === row.token_label &&
      (locator.object === base || locator.object.startsWith(`${base}-v`));
    if (!own) throw notOwnKey(projectId, key.keyUri);
    return undefined;
  }

  private requireUsable(projectId: string): ProjectRow {
    const row = this.rows.get(projectId);
    if (!row) throw problems.notFound(`Project ${projectId}`);
    if (row.key_state === 'revoked') {
      logger.warn({ projectId }, 'use of a revoked tenant key rejected');
      throw tenantKeyUnavailable(projectId, 'revoked');
    }
    return row;
  }

  /** Runs a ring call, turning an unavailable tenant key into the 423 problem. */
  withKey<T>(projectId: string, work: () => T): T {
    try {
      return work();
    } catch (error) {
      if (!(error instanceof TenantKeyUnavailableError)) throw error;

      logger.warn(
        { projectId, keyUri: error.keyUri, reason: error.reason },
        'tenant key unavailable',
      );
      throw tenantKeyUnavailable(projectId, reasonText(error.reason));
    }
  }

  private generateTenantKey(projectId: string, token: { label: string; pinFile: string }): string {
    try {
      return this.ring.createKey(token.label, token.pinFile, projectId);
    } catch (error) {
      if (error instanceof TenantKeyUnavailableError) {
        const field = error.reason === 'token_missing' ? 'token.label' : 'token.pinFile';
        const message =
          error.reason === 'token_missing'
            ? 'names no initialised token; initialise the customer token first'
            : 'was rejected by the token or cannot be read; give the path of the token user PIN file';
        throw problems.invalidRequest(`${field}: ${message}`, [{ field, message }]);
      }
      if (error instanceof RangeError) {
        throw problems.invalidRequest(`token.label: ${error.message}`, [
          { field: 'token.label', message: error.message },
        ]);
      }
      throw error;
    }
  }

  /**
   * Gives every appliance-keyed project without a tenant key version its
   * version 1, wrapped by the active master key. The earlier prompts of such
   * a project keep their data keys under the master key (prompt_data_keys),
   * where master key rotation moves them. Its new prompts use the tenant key.
   */
  private async addMissingTenantKeys(): Promise<void> {
    if (!(await this.findProjectsWithoutTenantKey()).length) return;

    // Found again inside the write transaction, so that an appliancectl
    // process starting at the same time cannot add the same version twice.
    const added = await this.database.write(async (transaction) => {
      const missing = await this.findProjectsWithoutTenantKey(transaction);
      for (const project of missing) {
        const keyUri = await this.addFirstApplianceKey(project.id, project.created_by, transaction);
        await this.database.sequelize.query('UPDATE projects SET key_uri = :uri WHERE id = :id', {
          transaction,
          replacements: { uri: keyUri, id: project.id },
        });
      }
      return missing.length;
    });
    logger.info({ projects: added }, 'tenant keys added to appliance-keyed projects');
  }

  /**
   * Generates, escrows and stores version 1 of the tenant key of an
   * appliance-keyed project whose row exists; returns its location.
   */
  private async addFirstApplianceKey(
    projectId: string,
    createdBy: string,
    transaction: Transaction,
  ): Promise<string> {
    const key = await createApplianceTenantKey(this.database, this.keys, projectId, 1, transaction);
    await insertActiveTenantKeyVersion(
      this.database,
      { ...key, projectId, version: 1, createdAt: new Date().toISOString(), createdBy },
      transaction,
    );
    return key.keyUri;
  }

  /** Lists the appliance-keyed projects that have no tenant key version yet. */
  private findProjectsWithoutTenantKey(
    transaction?: Transaction,
  ): Promise<{ id: string; created_by: string }[]> {
    return this.database.sequelize.query<{ id: string; created_by: string }>(
      `SELECT p.id, p.created_by FROM projects p
       WHERE p.key_mode = 'appliance'
         AND NOT EXISTS (SELECT 1 FROM project_key_versions v WHERE v.project_id = p.id)`,
      { type: QueryTypes.SELECT, transaction },
    );
  }

  private async checkTokenFree(label: string, transaction: Transaction): Promise<void> {
    const rows = await this.database.sequelize.query<{ id: string }>(
      'SELECT id FROM projects WHERE token_label = :label',
      { type: QueryTypes.SELECT, transaction, replacements: { label } },
    );
    if (rows.length) {
      throw problems.conflict(
        `The customer token "${label}" already contains the key of project ${rows[0].id}; each customer-keyed project needs a token of its own, because revoking logs out of the whole token.`,
      );
    }
  }

  private async saveKeyState(row: ProjectRow, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query(
      `UPDATE projects SET key_state = :key_state, key_state_changed_at = :key_state_changed_at,
         pin_file = :pin_file WHERE id = :id`,
      { transaction, replacements: { ...row } },
    );
  }

  private present(row: ProjectRow): Project {
    return {
      id: row.id,
      name: row.name,
      keyMode: row.key_mode,
      keyUri: row.key_uri!,
      keyState: this.stateOf(row),
      tokenLabel: row.token_label,
      createdAt: row.created_at,
    };
  }

  private stateOf(row: ProjectRow): ProjectKeyState {
    if (row.key_mode === 'appliance') return 'active';
    if (row.key_state === 'revoked') return 'revoked';
    try {
      this.ring.check(row.key_uri!);
      return 'active';
    } catch (error) {
      if (error instanceof TenantKeyUnavailableError) return 'unavailable';
      throw error;
    }
  }
}

/** Builds the problem for an appliance tenant key whose stored copy fails to unwrap; 409 Conflict. */
function tenantKeyIntegrityProblem(projectId: string, keyUri: string): ProblemError {
  return new ProblemError(
    409,
    'tenant_key_integrity_failed',
    'Tenant key failed its integrity check',
    `The stored tenant key ${keyUri} of project ${projectId} failed its integrity check under the master key, so nothing was written. It was altered outside the appliance; restore the project_key_versions table from a backup.`,
  );
}

function notOwnKey(projectId: string, keyUri: string): HsmError {
  return new HsmError(
    'hsm_unwrap_failed',
    `The data key names the tenant key ${keyUri}, which is no key version of project ${projectId}.`,
  );
}

function reasonText(reason: TenantKeyUnavailableError['reason']): string {
  switch (reason) {
    case 'disconnected':
      return 'revoked, or not logged in since the appliance started';
    case 'key_missing':
      return 'the key is not on the customer token: it was destroyed';
    case 'token_missing':
      return 'the customer token is missing';
    case 'login_failed':
      return 'the customer token rejected the PIN';
  }
}
