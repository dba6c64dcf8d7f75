import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import { rewrapDatabaseKeyTo } from './database-key-item';
import { masterWrappedTables, rewrapMasterWrappedKeys } from './master-wrapped-keys';
import {
  advanceRotation,
  findRotation,
  finishRotation,
  type RotationProgress,
} from './rotation-records';

/** Options of one run of the rewrap job. */
export interface RewrapOptions {
  /** Data keys per SQLite write transaction; default 200. */
  batchSize?: number;
  /** Stops after this many committed batches, leaving the rotation running; for crash tests and benchmarks. */
  maxBatches?: number;
  /** Called after each committed batch with the stored progress. */
  onProgress?(rotation: RotationProgress): void;
  /** Stops between batches when it returns true, leaving the rotation running. */
  shouldStop?(): boolean;
}

/** One wrapped data key that a rewrap batch moves, keyed like the rotation cursor. */
export interface WrappedKeyRow {
  prompt_id: string;
  key_version: number;
  wrapped_key: Buffer;
}

/**
 * The data keys that one kind of rotation moves: prompt data keys under the
 * appliance master key, or a project's data keys under its tenant key.
 * Every method runs inside the batch's write transaction.
 */
export interface RewrapTarget<Row extends WrappedKeyRow = WrappedKeyRow> {
  /** Names the kind of key in logs, such as "master key". */
  readonly name: string;
  /** Selects up to `limit` rows still below the rotation's version, after its cursor, in cursor order. */
  selectBatch(rotation: RotationProgress, limit: number, transaction: Transaction): Promise<Row[]>;
  /** Counts the rows still below the rotation's version, wherever the cursor is. */
  countLeft(rotation: RotationProgress, transaction: Transaction): Promise<number>;
  /** Rewraps one row to the rotation's key inside the token and stores it; returns 1 when moved, 0 when another job did. */
  moveRow(row: Row, rotation: RotationProgress, transaction: Transaction): Promise<number>;
  /** Runs once in the transaction that completes the rotation, for keys kept outside the batches. */
  beforeFinish?(rotation: RotationProgress, transaction: Transaction): Promise<void>;
}

type BatchOutcome = 'moved' | 'rescan' | 'finished';

const defaultBatchSize = 200;

/**
 * Moves the wrapped data keys of a master key rotation to its target
 * version; see runRewrapOf() for the batches and the resume rules. Throws
 * for a tenant key rotation, whose rewrap the tenants domain runs.
 */
export async function runRewrap(
  database: Database,
  keys: KeyProvider,
  rotationId: string,
  options: RewrapOptions = {},
): Promise<RotationProgress> {
  const rotation = await findRotation(database, rotationId);
  if (rotation?.projectId) {
    throw new Error(
      `rotation ${rotationId} rotates the tenant key of project ${rotation.projectId}; the tenants domain runs its rewrap`,
    );
  }
  return runRewrapOf(database, masterKeyTarget(database, keys), rotationId, options);
}

/**
 * Moves the wrapped data keys of a rotation to its target key version. Each
 * data key is unwrapped and wrapped again inside the token, so no plaintext
 * key reaches this process or the database, and prompt content stays as it
 * is. Each batch updates its rows and the rotation's cursor and count in
 * one write transaction, so a job stopped at any point resumes from the
 * last committed batch. Each target's UPDATE names the row's old version
 * in its WHERE clause, so a row moves at most once even when two jobs
 * overlap. Returns the rotation as stored when the job stopped.
 */
export async function runRewrapOf<Row extends WrappedKeyRow>(
  database: Database,
  target: RewrapTarget<Row>,
  rotationId: string,
  options: RewrapOptions = {},
): Promise<RotationProgress> {
  const batchSize = options.batchSize ?? defaultBatchSize;
  let batches = 0;

  for (;;) {
    if (options.maxBatches !== undefined && batches >= options.maxBatches) break;
    if (options.shouldStop?.()) break;

    let outcome: BatchOutcome;
    try {
      outcome = await database.write((transaction) =>
        rewrapBatch(database, target, rotationId, batchSize, transaction),
      );
    } catch (error) {
      await failRotation(database, rotationId, error);
      throw error;
    }

    if (outcome === 'finished') break;
    if (outcome === 'moved') {
      batches += 1;
      const progress = await findRotation(database, rotationId);
      if (progress) options.onProgress?.(progress);
    }
  }

  const stored = await findRotation(database, rotationId);
  if (!stored) throw new Error(`rotation ${rotationId} was not found`);
  return stored;
}

/** Moves one batch after the cursor; finishes the rotation when nothing is left. */
async function rewrapBatch<Row extends WrappedKeyRow>(
  database: Database,
  target: RewrapTarget<Row>,
  rotationId: string,
  batchSize: number,
  transaction: Transaction,
): Promise<BatchOutcome> {
  const rotation = await findRotation(database, rotationId, transaction);
  if (!rotation) throw new Error(`rotation ${rotationId} was not found`);
  if (rotation.state !== 'running') return 'finished';

  const rows = await target.selectBatch(rotation, batchSize, transaction);
  if (!rows.length) {
    // A data key below the cursor can still be under an old version when its
    // prompt was created with a version read before the rotation committed
    // in another process, so the job scans once more from the start.
    if (rotation.cursor !== null && (await target.countLeft(rotation, transaction)) > 0) {
      await advanceRotation(database, rotationId, 0, null, transaction);
      return 'rescan';
    }
    await target.beforeFinish?.(rotation, transaction);
    await finishRotation(database, rotation, { state: 'completed' }, transaction);
    logger.info(
      {
        rotationId,
        projectId: rotation.projectId,
        toVersion: rotation.toVersion,
        done: rotation.done,
      },
      `${target.name} rewrap completed`,
    );
    return 'finished';
  }

  let moved = 0;
  for (const row of rows) {
    moved += await target.moveRow(row, rotation, transaction);
  }

  const last = rows[rows.length - 1];
  await advanceRotation(
    database,
    rotationId,
    moved,
    { promptId: last.prompt_id, keyVersion: last.key_version },
    transaction,
  );
  return 'moved';
}

interface MasterKeyRow extends WrappedKeyRow {
  master_key_version: number;
  version_uri: string | null;
}

/**
 * Prompt data keys under the appliance master key. The rotation also
 * rewraps the TOTP data keys and the OAuth signing key's data key (see
 * master-wrapped-keys.ts) and the database key in the transaction that
 * completes it.
 */
function masterKeyTarget(database: Database, keys: KeyProvider): RewrapTarget<MasterKeyRow> {
  return {
    name: 'master key',

    selectBatch(rotation, limit, transaction) {
      const after = rotation.cursor
        ? 'AND (d.prompt_id > :promptId OR (d.prompt_id = :promptId AND d.key_version > :keyVersion))'
        : '';
      return database.sequelize.query<MasterKeyRow>(
        `SELECT d.prompt_id, d.key_version, d.wrapped_key, d.master_key_version, v.key_uri AS version_uri
         FROM prompt_data_keys d LEFT JOIN key_versions v ON v.version = d.master_key_version
         WHERE d.master_key_version < :to ${after}
         ORDER BY d.prompt_id, d.key_version LIMIT :limit`,
        {
          type: QueryTypes.SELECT,
          transaction,
          replacements: {
            to: rotation.toVersion,
            promptId: rotation.cursor?.promptId ?? null,
            keyVersion: rotation.cursor?.keyVersion ?? null,
            limit,
          },
        },
      );
    },

    async countLeft(rotation, transaction) {
      const rows = await database.sequelize.query<{ count: number }>(
        'SELECT COUNT(*) AS count FROM prompt_data_keys WHERE master_key_version < :to',
        { type: QueryTypes.SELECT, transaction, replacements: { to: rotation.toVersion } },
      );
      return rows[0]?.count ?? 0;
    },

    async moveRow(row, rotation, transaction) {
      if (row.version_uri === null && row.master_key_version !== 1) {
        throw new Error(
          `the data key of prompt ${row.prompt_id} names master key version ${row.master_key_version}, which key_versions does not record`,
        );
      }
      const fromUri = row.version_uri ?? keys.masterKeyUri;
      const rewrapped = keys.rewrapDataKey(Buffer.from(row.wrapped_key), fromUri, rotation.keyUri);

      const updated = await database.sequelize.query<{ prompt_id: string }>(
        `UPDATE prompt_data_keys SET wrapped_key = :wrapped, master_key_uri = :uri, master_key_version = :to
         WHERE prompt_id = :promptId AND key_version = :keyVersion AND master_key_version = :from
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
            from: row.master_key_version,
          },
        },
      );
      return updated.length;
    },

    async beforeFinish(rotation, transaction) {
      for (const source of masterWrappedTables) {
        const moved = await rewrapMasterWrappedKeys(database, keys, source, rotation, transaction);
        if (moved) {
          logger.info(
            { rotationId: rotation.id, table: source.table, moved },
            'data keys rewrapped',
          );
        }
      }
      rewrapDatabaseKeyTo(database, keys, rotation);
    },
  };
}

/** Records the failure; the batch that failed rolled back, so the cursor still points before it. */
async function failRotation(database: Database, rotationId: string, error: unknown): Promise<void> {
  const message = error instanceof Error ? error.message : String(error);
  logger.error({ err: error, rotationId }, 'key rewrap failed');
  try {
    await database.write(async (transaction) => {
      const rotation = await findRotation(database, rotationId, transaction);
      if (rotation?.state === 'running') {
        await finishRotation(database, rotation, { state: 'failed', error: message }, transaction);
      }
    });
  } catch (recordError) {
    logger.error({ err: recordError, rotationId }, 'recording the failed rewrap failed');
  }
}

/**
 * The background rewrap jobs of one process, at most one per rotation.
 * `kind` names the key in logs, such as "master key".
 */
export class RewrapJobs {
  private readonly jobs = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(
    private readonly kind: string,
    private readonly run: (rotationId: string) => Promise<RotationProgress>,
  ) {}

  /** Reports whether stop() was called; running jobs check it between batches. */
  get stopped(): boolean {
    return this.stopping;
  }

  /** Starts the rewrap of a rotation unless one already runs in this process. */
  start(rotationId: string): void {
    if (this.stopping || this.jobs.has(rotationId)) return;

    const job = this.run(rotationId)
      .then((rotation) => {
        logger.info(
          {
            rotationId,
            projectId: rotation.projectId,
            state: rotation.state,
            done: rotation.done,
            total: rotation.total,
          },
          `${this.kind} rewrap job ended`,
        );
      })
      .catch((error: unknown) => {
        logger.error({ err: error, rotationId }, `${this.kind} rewrap job failed`);
      })
      .finally(() => this.jobs.delete(rotationId));
    this.jobs.set(rotationId, job);
  }

  /** Stops the jobs after their current batch and waits for them. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.jobs.values());
  }
}
