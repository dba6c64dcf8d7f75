import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../platform/database';

/** Origin of a rotation or rewrap. */
export type RotationTrigger = 'api' | 'cli' | 'scheduler';

/** State of a rotation's rewrap: `running` until every data key moved, or `failed` with an error. */
export type RotationState = 'running' | 'completed' | 'failed';

/**
 * Evidence of one master key rotation, or of a rewrap to the active version
 * without a new key (then fromVersion is the oldest version moved). A
 * rotation of a project's tenant master key names the project.
 */
export interface RotationRecord {
  id: string;
  /** Project whose tenant master key was rotated; null for the appliance master key. */
  projectId: string | null;
  trigger: RotationTrigger;
  /** User name, `cli:<os user>` or `scheduler`. */
  actor: string;
  /** PKCS#11 URI of the master key version the data keys move to. */
  keyUri: string;
  fromVersion: number;
  toVersion: number;
  state: RotationState;
  /** Data keys to move, counted when the rotation started. */
  total: number;
  /** Data keys moved so far. */
  done: number;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  error: string | null;
}

interface RotationRow {
  id: string;
  project_id: string | null;
  trigger: RotationTrigger;
  actor: string;
  key_uri: string;
  from_version: number;
  to_version: number;
  state: RotationState;
  total: number;
  done: number;
  cursor_prompt_id: string | null;
  cursor_key_version: number | null;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  error: string | null;
}

/** A rotation row with the cursor of its rewrap. */
export interface RotationProgress extends RotationRecord {
  cursor: { promptId: string; keyVersion: number } | null;
}

function toProgress(row: RotationRow): RotationProgress {
  return {
    id: row.id,
    projectId: row.project_id,
    trigger: row.trigger,
    actor: row.actor,
    keyUri: row.key_uri,
    fromVersion: row.from_version,
    toVersion: row.to_version,
    state: row.state,
    total: row.total,
    done: row.done,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    durationMs: row.duration_ms,
    error: row.error,
    cursor:
      row.cursor_prompt_id === null || row.cursor_key_version === null
        ? null
        : { promptId: row.cursor_prompt_id, keyVersion: row.cursor_key_version },
  };
}

/** Drops the cursor, which is internal to the rewrap job. */
export function toRecord(progress: RotationProgress): RotationRecord {
  const { cursor: _cursor, ...record } = progress;
  return record;
}

export async function insertRotation(
  database: Database,
  record: RotationRecord,
  transaction: Transaction,
): Promise<void> {
  await database.sequelize.query(
    `INSERT INTO key_rotations (id, project_id, trigger, actor, key_uri, from_version, to_version, state,
       total, done, started_at, finished_at, duration_ms, error)
     VALUES (:id, :projectId, :trigger, :actor, :keyUri, :fromVersion, :toVersion, :state,
       :total, :done, :startedAt, :finishedAt, :durationMs, :error)`,
    { transaction, replacements: { ...record } },
  );
}

export async function findRotation(
  database: Database,
  id: string,
  transaction?: Transaction,
): Promise<RotationProgress | undefined> {
  const rows = await database.sequelize.query<RotationRow>(
    'SELECT * FROM key_rotations WHERE id = :id',
    { type: QueryTypes.SELECT, transaction, replacements: { id } },
  );
  return rows.length ? toProgress(rows[0]) : undefined;
}

/**
 * Lists rotations, newest first. `projectId` narrows to one project's
 * rotations, and null to those of the appliance master key.
 */
export async function listRotations(
  database: Database,
  filter: { state?: RotationState; limit?: number; projectId?: string | null } = {},
  transaction?: Transaction,
): Promise<RotationProgress[]> {
  const conditions: string[] = [];
  if (filter.state) conditions.push('state = :state');
  if (filter.projectId === null) conditions.push('project_id IS NULL');
  if (typeof filter.projectId === 'string') conditions.push('project_id = :projectId');
  const where = conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
  const rows = await database.sequelize.query<RotationRow>(
    `SELECT * FROM key_rotations ${where} ORDER BY started_at DESC, id LIMIT :limit`,
    {
      type: QueryTypes.SELECT,
      transaction,
      replacements: {
        state: filter.state ?? null,
        projectId: filter.projectId ?? null,
        limit: filter.limit ?? 100,
      },
    },
  );
  return rows.map(toProgress);
}

/** Adds a committed batch to the progress, in the batch's own transaction. */
export async function advanceRotation(
  database: Database,
  id: string,
  moved: number,
  cursor: { promptId: string; keyVersion: number } | null,
  transaction: Transaction,
): Promise<void> {
  await database.sequelize.query(
    `UPDATE key_rotations SET done = done + :moved, cursor_prompt_id = :promptId,
       cursor_key_version = :keyVersion WHERE id = :id`,
    {
      transaction,
      replacements: {
        id,
        moved,
        promptId: cursor?.promptId ?? null,
        keyVersion: cursor?.keyVersion ?? null,
      },
    },
  );
}

/** Ends a rotation as completed or failed; `error` is a message for the operator, never key material. */
export async function finishRotation(
  database: Database,
  rotation: RotationProgress,
  outcome: { state: 'completed' | 'failed'; error?: string },
  transaction: Transaction,
): Promise<void> {
  const finishedAt = new Date();
  await database.sequelize.query(
    `UPDATE key_rotations SET state = :state, finished_at = :finishedAt, duration_ms = :durationMs,
       error = :error, total = MAX(total, done) WHERE id = :id`,
    {
      transaction,
      replacements: {
        id: rotation.id,
        state: outcome.state,
        finishedAt: finishedAt.toISOString(),
        durationMs: finishedAt.getTime() - Date.parse(rotation.startedAt),
        error: outcome.error ?? null,
      },
    },
  );
}

/** Sets a failed rotation running again, so a new job continues from its cursor. */
export async function reopenRotation(
  database: Database,
  id: string,
  transaction: Transaction,
): Promise<void> {
  await database.sequelize.query(
    `UPDATE key_rotations SET state = 'running', finished_at = NULL, duration_ms = NULL, error = NULL
     WHERE id = :id AND state = 'failed'`,
    { transaction, replacements: { id } },
  );
}
