import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
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

interface WrappedKeyRow {
  prompt_id: string;
  key_version: number;
  wrapped_key: Buffer;
  master_key_version: number;
  version_uri: string | null;
}

type BatchOutcome = 'moved' | 'rescan' | 'finished';

const defaultBatchSize = 200;

/**
 * Moves the wrapped data keys of a rotation to its target master key
 * version. Each data key is unwrapped and wrapped again inside the token
 * (KeyProvider.rewrapDataKey), so no plaintext key reaches this process or
 * the database, and prompt content stays as it is. Each batch updates its
 * rows and the rotation's cursor and count in one write transaction, so a
 * job stopped at any point resumes from the last committed batch. The
 * conditional UPDATE moves each row at most once, even when two jobs overlap.
 * Returns the rotation as stored when the job stopped.
 */
export async function runRewrap(
  database: Database,
  keys: KeyProvider,
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
        rewrapBatch(database, keys, rotationId, batchSize, transaction),
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
async function rewrapBatch(
  database: Database,
  keys: KeyProvider,
  rotationId: string,
  batchSize: number,
  transaction: Transaction,
): Promise<BatchOutcome> {
  const rotation = await findRotation(database, rotationId, transaction);
  if (!rotation) throw new Error(`rotation ${rotationId} was not found`);
  if (rotation.state !== 'running') return 'finished';

  const rows = await selectBatch(database, rotation, batchSize, transaction);
  if (!rows.length) {
    // A data key below the cursor can still be under an old version when its
    // prompt was created with a version read before the rotation committed
    // in another process, so the job scans once more from the start.
    if (rotation.cursor !== null && (await countLeft(database, rotation, transaction)) > 0) {
      await advanceRotation(database, rotationId, 0, null, transaction);
      return 'rescan';
    }
    await finishRotation(database, rotation, { state: 'completed' }, transaction);
    logger.info(
      { rotationId, toVersion: rotation.toVersion, done: rotation.done },
      'master key rewrap completed',
    );
    return 'finished';
  }

  let moved = 0;
  for (const row of rows) {
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
    moved += updated.length;
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

function selectBatch(
  database: Database,
  rotation: RotationProgress,
  batchSize: number,
  transaction: Transaction,
): Promise<WrappedKeyRow[]> {
  const after = rotation.cursor
    ? 'AND (d.prompt_id > :promptId OR (d.prompt_id = :promptId AND d.key_version > :keyVersion))'
    : '';
  return database.sequelize.query<WrappedKeyRow>(
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
        limit: batchSize,
      },
    },
  );
}

async function countLeft(
  database: Database,
  rotation: RotationProgress,
  transaction: Transaction,
): Promise<number> {
  const rows = await database.sequelize.query<{ count: number }>(
    'SELECT COUNT(*) AS count FROM prompt_data_keys WHERE master_key_version < :to',
    { type: QueryTypes.SELECT, transaction, replacements: { to: rotation.toVersion } },
  );
  return rows[0]?.count ?? 0;
}

/** Records the failure; the batch that failed rolled back, so the cursor still points before it. */
async function failRotation(database: Database, rotationId: string, error: unknown): Promise<void> {
  const message = error instanceof Error ? error.message : String(error);
  logger.error({ err: error, rotationId }, 'master key rewrap failed');
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
