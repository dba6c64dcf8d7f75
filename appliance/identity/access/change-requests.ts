import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';

export const changeKinds = [
  'role.create',
  'role.replace',
  'role.delete',
  'grant.create',
  'user.role',
] as const;
export type ChangeKind = (typeof changeKinds)[number];

export type ChangeStatus = 'pending' | 'approved' | 'rejected';

/** An access change that waits for a second admin. The payload is the validated request body. */
export interface ChangeRequest {
  id: string;
  kind: ChangeKind;
  payload: Record<string, unknown>;
  /** One English sentence naming the change, for the approver. */
  summary: string;
  requestedBy: string;
  requestedAt: string;
  status: ChangeStatus;
  decidedBy: string | null;
  decidedAt: string | null;
  comment: string | null;
}

interface ChangeRow {
  id: string;
  kind: ChangeKind;
  payload: string;
  summary: string;
  requested_by: string;
  requested_at: string;
  status: ChangeStatus;
  decided_by: string | null;
  decided_at: string | null;
  comment: string | null;
}

export class ChangeRequestStore {
  constructor(private readonly database: Database) {}

  async create(
    request: Pick<ChangeRequest, 'kind' | 'payload' | 'summary' | 'requestedBy'>,
    transaction: Transaction,
  ): Promise<ChangeRequest> {
    const stored: ChangeRequest = {
      ...request,
      id: crypto.randomUUID(),
      requestedAt: new Date().toISOString(),
      status: 'pending',
      decidedBy: null,
      decidedAt: null,
      comment: null,
    };
    await this.database.sequelize.query(
      `INSERT INTO access_change_requests (id, kind, payload, summary, requested_by, requested_at, status)
       VALUES (:id, :kind, :payload, :summary, :requestedBy, :requestedAt, :status)`,
      { transaction, replacements: { ...stored, payload: JSON.stringify(stored.payload) } },
    );
    return stored;
  }

  async list(status?: ChangeStatus): Promise<ChangeRequest[]> {
    const rows = await this.database.sequelize.query<ChangeRow>(
      `SELECT * FROM access_change_requests ${status ? 'WHERE status = :status' : ''} ORDER BY requested_at DESC`,
      { type: QueryTypes.SELECT, replacements: { status } },
    );
    return rows.map(toChangeRequest);
  }

  async get(id: string, transaction?: Transaction): Promise<ChangeRequest | undefined> {
    const rows = await this.database.sequelize.query<ChangeRow>(
      'SELECT * FROM access_change_requests WHERE id = :id',
      { type: QueryTypes.SELECT, transaction, replacements: { id } },
    );
    return rows[0] ? toChangeRequest(rows[0]) : undefined;
  }

  async decide(
    id: string,
    decision: { status: Exclude<ChangeStatus, 'pending'>; by: string; comment?: string },
    transaction: Transaction,
  ): Promise<void> {
    await this.database.sequelize.query(
      `UPDATE access_change_requests SET status = :status, decided_by = :by, decided_at = :now, comment = :comment
       WHERE id = :id AND status = 'pending'`,
      {
        transaction,
        replacements: {
          id,
          ...decision,
          comment: decision.comment ?? null,
          now: new Date().toISOString(),
        },
      },
    );
  }
}

function toChangeRequest(row: ChangeRow): ChangeRequest {
  return {
    id: row.id,
    kind: row.kind,
    payload: JSON.parse(row.payload) as Record<string, unknown>,
    summary: row.summary,
    requestedBy: row.requested_by,
    requestedAt: new Date(row.requested_at).toISOString(),
    status: row.status,
    decidedBy: row.decided_by,
    decidedAt: row.decided_at ? new Date(row.decided_at).toISOString() : null,
    comment: row.comment,
  };
}
