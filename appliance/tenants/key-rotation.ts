import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import { TenantKeyUnavailableError } from '../../hsm/tenant-keys';
import { problems } from '../http/problem';
import {
  RewrapJobs,
  runRewrapOf,
  type RewrapOptions,
  type RewrapTarget,
  type WrappedKeyRow,
} from '../keys/rewrap-job';
import type { AuditedCommit, KeyOperator } from '../keys/rotation';
import {
  insertRotation,
  listRotations,
  type RotationProgress,
  type RotationRecord,
} from '../keys/rotation-records';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import { tenantKeyRef } from '../vault/envelope';
import type { ProjectService } from './service';
import {
  countTenantDataKeysBelow,
  insertActiveTenantKeyVersion,
  listTenantKeyVersions,
} from './key-versions';

/** Project service calls that the tenant key rotation uses. */
export type RotatableProjects = Pick<
  ProjectService,
  | 'requireRotatable'
  | 'createKeyVersion'
  | 'destroyUnrecordedVersion'
  | 'rewrapDataKey'
  | 'activateVersion'
>;

interface TenantKeyRow extends WrappedKeyRow {
  tenant_key_version: number;
  version_uri: string | null;
  version_wrapped_key: Buffer | null;
  version_master_key_uri: string | null;
  to_uri: string | null;
  to_wrapped_key: Buffer | null;
  to_master_key_uri: string | null;
}

/**
 * Rotation of a project's tenant key. It makes the next version, on the
 * customer token or wrapped by the master key for an appliance-keyed
 * project, and makes it active. The same resumable rewrap job as the
 * appliance master key's then moves the project's data keys to it. The
 * rotation record goes to key_rotations with the project's id.
 */
export class TenantKeyRotation {
  private readonly jobs = new RewrapJobs('tenant key', (id) => this.rewrap(id));

  constructor(
    private readonly database: Database,
    private readonly projects: RotatableProjects,
    private readonly rewrapOptions: Pick<RewrapOptions, 'batchSize'> = {},
  ) {}

  /**
   * Generates and records the next tenant key version of `projectId`.
   * Rejected with 409 while a rotation of that project runs, and with 423
   * when its customer key is revoked or destroyed. When the commit fails
   * after the customer token generated the key, the key is destroyed again.
   */
  async rotate(
    projectId: string,
    operator: KeyOperator,
    commit: AuditedCommit,
  ): Promise<RotationRecord> {
    let created: { projectId: string; keyUri: string } | undefined;
    try {
      return await commit(async (transaction) => {
        const currentUri = this.projects.requireRotatable(projectId);
        await this.refuseWhileRunning(projectId, transaction);

        const versions = await listTenantKeyVersions(this.database, projectId, transaction);
        const active = versions.find((version) => version.state === 'active');
        const next = Math.max(0, ...versions.map((version) => version.version)) + 1;

        const key = await this.projects.createKeyVersion(projectId, currentUri, next, transaction);
        created = { projectId, keyUri: key.keyUri };
        const createdUri = key.keyUri;
        const now = new Date().toISOString();
        await insertActiveTenantKeyVersion(
          this.database,
          { ...key, projectId, version: next, createdAt: now, createdBy: operator.actor },
          transaction,
        );
        await this.database.sequelize.query('UPDATE projects SET key_uri = :uri WHERE id = :id', {
          transaction,
          replacements: { uri: createdUri, id: projectId },
        });

        const record: RotationRecord = {
          id: crypto.randomUUID(),
          projectId,
          trigger: operator.trigger,
          actor: operator.actor,
          keyUri: createdUri,
          fromVersion: active?.version ?? next - 1,
          toVersion: next,
          state: 'running',
          total: await countTenantDataKeysBelow(this.database, projectId, next, transaction),
          done: 0,
          startedAt: now,
          finishedAt: null,
          durationMs: null,
          error: null,
        };
        await insertRotation(this.database, record, transaction);

        const uri = createdUri;
        transaction.afterCommit(() => this.projects.activateVersion(projectId, uri));
        return record;
      });
    } catch (error) {
      if (created !== undefined) this.destroyUnrecorded(created.projectId, created.keyUri);
      throw error;
    }
  }

  /** Runs the rewrap of a tenant key rotation in this call; see runRewrapOf(). */
  rewrap(id: string, options: RewrapOptions = {}): Promise<RotationProgress> {
    return runRewrapOf(this.database, this.target(), id, {
      ...this.rewrapOptions,
      ...options,
      shouldStop: () => this.jobs.stopped || (options.shouldStop?.() ?? false),
    });
  }

  /** Starts the rewrap of a rotation in the background unless one already runs in this process. */
  startRewrap(id: string): void {
    this.jobs.start(id);
  }

  /** Resumes every tenant key rotation left running. */
  async resumeUnfinished(): Promise<string[]> {
    const running = (await listRotations(this.database, { state: 'running' })).filter(
      (rotation) => rotation.projectId !== null,
    );
    for (const rotation of running) {
      logger.info(
        { rotationId: rotation.id, projectId: rotation.projectId, done: rotation.done },
        'resuming tenant key rewrap',
      );
      this.startRewrap(rotation.id);
    }
    return running.map((rotation) => rotation.id);
  }

  /** Stops the background jobs after their current batch and waits for them. */
  async stop(): Promise<void> {
    await this.jobs.stop();
  }

  private async refuseWhileRunning(projectId: string, transaction: Transaction): Promise<void> {
    const [running] = await listRotations(
      this.database,
      { state: 'running', limit: 1, projectId },
      transaction,
    );
    if (running) {
      throw problems.conflict(
        `The key rotation ${running.id} of project ${projectId} to tenant key version ${running.toVersion} is still running (${running.done} of ${running.total} data keys moved). Wait for it to complete, then retry. A rotation started by \`appliancectl keys rotate\` without --wait moves nothing until \`appliancectl keys rewrap ${running.id}\` or POST /api/v1/keys/rotations/${running.id}/resume runs it.`,
      );
    }
  }

  /** Builds the rewrap target: the project's data keys under older tenant key versions, rewrapped inside the token. */
  private target(): RewrapTarget<TenantKeyRow> {
    const database = this.database;
    const projects = this.projects;
    return {
      name: 'tenant key',

      selectBatch(rotation, limit, transaction) {
        const after = rotation.cursor
          ? 'AND (d.prompt_id > :promptId OR (d.prompt_id = :promptId AND d.key_version > :keyVersion))'
          : '';
        return database.sequelize.query<TenantKeyRow>(
          `SELECT d.prompt_id, d.key_version, d.wrapped_key, d.tenant_key_version, v.key_uri AS version_uri,
             v.wrapped_key AS version_wrapped_key, v.master_key_uri AS version_master_key_uri,
             t.key_uri AS to_uri, t.wrapped_key AS to_wrapped_key, t.master_key_uri AS to_master_key_uri
           FROM project_data_keys d LEFT JOIN project_key_versions v
             ON v.project_id = d.project_id AND v.version = d.tenant_key_version
           LEFT JOIN project_key_versions t ON t.project_id = d.project_id AND t.version = :to
           WHERE d.project_id = :projectId AND d.tenant_key_version < :to ${after}
           ORDER BY d.prompt_id, d.key_version LIMIT :limit`,
          {
            type: QueryTypes.SELECT,
            transaction,
            replacements: {
              projectId: rotation.projectId,
              to: rotation.toVersion,
              promptId: rotation.cursor?.promptId ?? null,
              keyVersion: rotation.cursor?.keyVersion ?? null,
              limit,
            },
          },
        );
      },

      async countLeft(rotation, transaction) {
        return countTenantDataKeysBelow(
          database,
          rotation.projectId!,
          rotation.toVersion,
          transaction,
        );
      },

      async moveRow(row, rotation, transaction) {
        if (row.version_uri === null || row.to_uri === null) {
          throw new Error(
            `the data key of prompt ${row.prompt_id} names tenant key version ${row.tenant_key_version} of project ${rotation.projectId}, which project_key_versions does not record`,
          );
        }
        // A revoked or destroyed customer key throws the 423 problem, which fails the rotation.
        const rewrapped = projects.rewrapDataKey(
          rotation.projectId!,
          Buffer.from(row.wrapped_key),
          tenantKeyRef(row.version_uri, row.version_wrapped_key, row.version_master_key_uri),
          tenantKeyRef(row.to_uri, row.to_wrapped_key, row.to_master_key_uri),
        );
        const updated = await database.sequelize.query<{ prompt_id: string }>(
          `UPDATE project_data_keys SET wrapped_key = :wrapped, tenant_key_uri = :uri, tenant_key_version = :to
           WHERE prompt_id = :promptId AND key_version = :keyVersion AND tenant_key_version = :from
           RETURNING prompt_id`,
          {
            type: QueryTypes.SELECT,
            transaction,
            replacements: {
              wrapped: rewrapped,
              uri: rotation.keyUri,
              to: rotation.toVersion,
              promptId: row.prompt_id,
              keyVersion: row.key_version,
              from: row.tenant_key_version,
            },
          },
        );
        return updated.length;
      },
    };
  }

  private destroyUnrecorded(projectId: string, uri: string): void {
    try {
      this.projects.destroyUnrecordedVersion(projectId, uri);
    } catch (error) {
      const reason = error instanceof TenantKeyUnavailableError ? error.reason : undefined;
      logger.error(
        { err: error, tenantKeyUri: uri, reason },
        'destroying an unrecorded tenant key version failed; delete it from the customer token by hand',
      );
    }
  }
}
