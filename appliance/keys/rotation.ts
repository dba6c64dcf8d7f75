import crypto from 'node:crypto';

import type { Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { AuditEntry } from '../audit/trail';
import { problems } from '../http/problem';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import {
  countDataKeysBelow,
  listMasterKeyVersions,
  recordFirstMasterKeyVersion,
  type MasterKeyVersion,
} from './master-key-versions';
import { countDatabaseKeyBelow } from './database-key-item';
import { countMasterWrappedBelow, masterWrappedTables } from './master-wrapped-keys';
import { RewrapJobs, runRewrap, type RewrapOptions } from './rewrap-job';
import {
  findRotation,
  insertRotation,
  listRotations,
  reopenRotation,
  toRecord,
  type RotationProgress,
  type RotationRecord,
  type RotationTrigger,
} from './rotation-records';

/** Operator of a rotation, a rewrap or a retirement. */
export interface KeyOperator {
  trigger: RotationTrigger;
  /** User name, `cli:<os user>` or `scheduler`. */
  actor: string;
}

/**
 * Runs `work` in one write transaction together with its audit record, so
 * either both are stored or neither. Routes pass `context.commit`.
 */
export type AuditedCommit = <T>(work: (transaction: Transaction) => Promise<T>) => Promise<T>;

/**
 * Master key rotation: generates the next master key version on the token,
 * makes it active, and moves the wrapped data keys to it in a background
 * rewrap job. Also sets the minimum decryption version, which retires the
 * versions below it.
 */
export class KeyRotationService {
  private readonly jobs = new RewrapJobs('master key', (id) => this.rewrap(id));

  constructor(
    private readonly database: Database,
    private readonly keys: KeyProvider,
    private readonly rewrapOptions: Pick<RewrapOptions, 'batchSize'> = {},
  ) {}

  /**
   * Generates the next master key version and records it as active, with
   * the previous active version decrypt-only and a running rotation record.
   * Rejected with 409 while another rotation is still running. When the
   * commit fails after the token generated the key, the key is destroyed
   * again so no unrecorded version stays on the token.
   */
  async rotate(operator: KeyOperator, commit: AuditedCommit): Promise<RotationRecord> {
    let createdUri: string | undefined;
    try {
      return await commit(async (transaction) => {
        await this.refuseWhileRunning(transaction);
        await recordFirstMasterKeyVersion(this.database, this.keys, transaction);

        const versions = await listMasterKeyVersions(this.database, transaction);
        const active = versions.find((version) => version.state === 'active');
        const next = Math.max(...versions.map((version) => version.version)) + 1;

        createdUri = this.keys.createMasterKeyVersion(next);
        const now = new Date().toISOString();
        await this.database.sequelize.query(
          `UPDATE key_versions SET state = 'decrypt-only' WHERE state = 'active'`,
          { transaction },
        );
        await this.database.sequelize.query(
          `INSERT INTO key_versions (version, key_uri, state, created_at, created_by)
           VALUES (:version, :uri, 'active', :now, :actor)`,
          {
            transaction,
            replacements: { version: next, uri: createdUri, now, actor: operator.actor },
          },
        );

        const record: RotationRecord = {
          id: crypto.randomUUID(),
          projectId: null,
          trigger: operator.trigger,
          actor: operator.actor,
          keyUri: createdUri,
          fromVersion: active?.version ?? next - 1,
          toVersion: next,
          state: 'running',
          total: await countDataKeysBelow(this.database, next, transaction),
          done: 0,
          startedAt: now,
          finishedAt: null,
          durationMs: null,
          error: null,
        };
        await insertRotation(this.database, record, transaction);
        return record;
      });
    } catch (error) {
      if (createdUri !== undefined) this.destroyUnrecorded(createdUri);
      throw error;
    }
  }

  /**
   * Records a rewrap of the data keys still under older versions to the
   * active version, without a new key. Used after a restore brought back
   * data keys under a retired version. Rejected with 409 while a rotation runs
   * and when no data key is left to move.
   */
  async rewrapToActive(operator: KeyOperator, commit: AuditedCommit): Promise<RotationRecord> {
    return commit(async (transaction) => {
      await this.refuseWhileRunning(transaction);
      await recordFirstMasterKeyVersion(this.database, this.keys, transaction);

      const versions = await listMasterKeyVersions(this.database, transaction);
      const active = requireActive(versions);
      const total = await countDataKeysBelow(this.database, active.version, transaction);
      const wrappedLeft = await this.countWrappedBelow(active.version, transaction);
      if (total === 0 && wrappedLeft.total === 0) {
        throw problems.conflict(
          `Every data key is already wrapped under the active master key version ${active.version}; nothing to rewrap.`,
        );
      }

      const record: RotationRecord = {
        id: crypto.randomUUID(),
        projectId: null,
        trigger: operator.trigger,
        actor: operator.actor,
        keyUri: active.keyUri,
        fromVersion: Math.min(...versions.map((version) => version.version)),
        toVersion: active.version,
        state: 'running',
        total,
        done: 0,
        startedAt: new Date().toISOString(),
        finishedAt: null,
        durationMs: null,
        error: null,
      };
      await insertRotation(this.database, record, transaction);
      return record;
    });
  }

  /**
   * Sets the minimum decryption version: versions below it become retired.
   * Rejected with 409 while any data key is still wrapped under such a
   * version, and with 400 above the active version.
   */
  async setMinimumVersion(minimum: number, transaction: Transaction): Promise<MasterKeyVersion[]> {
    await recordFirstMasterKeyVersion(this.database, this.keys, transaction);
    const versions = await listMasterKeyVersions(this.database, transaction);
    const active = requireActive(versions);

    if (minimum > active.version) {
      throw problems.invalidRequest('The minimum decryption version is invalid.', [
        {
          field: 'minimumVersion',
          message: `must be at most the active master key version ${active.version}`,
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

    const remaining = await countDataKeysBelow(this.database, minimum, transaction);
    const wrapped = await this.countWrappedBelow(minimum, transaction);
    if (remaining > 0 || wrapped.total > 0) {
      const parts = [`${remaining} prompt data keys`, ...wrapped.parts].join(', ');
      throw problems.conflict(
        `Retiring master key versions below ${minimum} was rejected: ${remaining + wrapped.total} data keys are still wrapped under them (${parts}). Finish the rewrap (appliancectl keys rewrap) and retry.`,
      );
    }

    if (countDatabaseKeyBelow(this.database, minimum) > 0) {
      throw problems.conflict(
        `Retiring master key versions below ${minimum} was rejected: the database key is still wrapped under them. Finish the rewrap (appliancectl keys rewrap) and retry.`,
      );
    }

    await this.database.sequelize.query(
      `UPDATE key_versions SET state = 'retired', retired_at = :now
       WHERE version < :minimum AND state <> 'retired'`,
      { transaction, replacements: { minimum, now: new Date().toISOString() } },
    );
    return listMasterKeyVersions(this.database, transaction);
  }

  /** Sets a failed rotation running again; its job continues from the last committed batch. */
  async reopen(id: string, transaction: Transaction): Promise<RotationRecord> {
    const rotation = await findRotation(this.database, id, transaction);
    if (!rotation) throw problems.notFound(`The key rotation ${id}`);
    if (rotation.state === 'completed') {
      throw problems.conflict(`The key rotation ${id} is already completed; nothing to resume.`);
    }
    await reopenRotation(this.database, id, transaction);
    return toRecord((await findRotation(this.database, id, transaction))!);
  }

  async get(id: string): Promise<RotationRecord | undefined> {
    const rotation = await findRotation(this.database, id);
    return rotation && toRecord(rotation);
  }

  async list(): Promise<RotationRecord[]> {
    return (await listRotations(this.database)).map(toRecord);
  }

  versions(): Promise<MasterKeyVersion[]> {
    return listMasterKeyVersions(this.database);
  }

  /** Runs the rewrap of a rotation in this call; see runRewrap(). */
  rewrap(id: string, options: RewrapOptions = {}): Promise<RotationProgress> {
    return runRewrap(this.database, this.keys, id, {
      ...this.rewrapOptions,
      ...options,
      shouldStop: () => this.jobs.stopped || (options.shouldStop?.() ?? false),
    });
  }

  /** Starts the rewrap of a rotation in the background unless one already runs in this process. */
  startRewrap(id: string): void {
    this.jobs.start(id);
  }

  /**
   * Resumes every master key rotation left running, such as after a crash
   * or a stop mid-run. The tenants domain resumes tenant key rotations.
   */
  async resumeUnfinished(): Promise<string[]> {
    const running = await listRotations(this.database, { state: 'running', projectId: null });
    for (const rotation of running) {
      logger.info({ rotationId: rotation.id, done: rotation.done }, 'resuming master key rewrap');
      this.startRewrap(rotation.id);
    }
    return running.map((rotation) => rotation.id);
  }

  /** Stops the background jobs after their current batch and waits for them. */
  async stop(): Promise<void> {
    await this.jobs.stop();
  }

  /** Counts the TOTP and OAuth signing data keys and the tenant keys under a master key version below `version`, per table. */
  private async countWrappedBelow(
    version: number,
    transaction: Transaction,
  ): Promise<{ total: number; parts: string[] }> {
    let total = 0;
    const parts: string[] = [];
    for (const source of masterWrappedTables) {
      const count = await countMasterWrappedBelow(this.database, source, version, transaction);
      total += count;
      parts.push(`${count} in ${source.table}`);
    }
    return { total, parts };
  }

  private async refuseWhileRunning(transaction: Transaction): Promise<void> {
    const [running] = await listRotations(
      this.database,
      { state: 'running', limit: 1, projectId: null },
      transaction,
    );
    if (running) {
      throw problems.conflict(
        `The key rotation ${running.id} to master key version ${running.toVersion} is still running (${running.done} of ${running.total} data keys moved). Wait for it to complete, then retry.`,
      );
    }
  }

  private destroyUnrecorded(uri: string): void {
    try {
      this.keys.destroyMasterKeyVersion(uri);
    } catch (error) {
      logger.error(
        { err: error, masterKeyUri: uri },
        'destroying an unrecorded master key version failed; delete it from the token by hand',
      );
    }
  }
}

function requireActive(versions: MasterKeyVersion[]): MasterKeyVersion {
  const active = versions.find((version) => version.state === 'active');
  if (!active) throw new Error('key_versions has no active master key version');
  return active;
}

/** Builds the audit entry of a rotation that no HTTP request started. */
export function rotationAuditEntry(
  operator: KeyOperator,
  action: string,
  resourceId?: string,
  resourceType = 'master-key',
): AuditEntry {
  return {
    requestId: crypto.randomUUID(),
    actor: { username: operator.actor },
    action,
    resource: { type: resourceType, ...(resourceId ? { id: resourceId } : {}) },
    outcome: 'success',
    sourceIp: 'local',
  };
}
