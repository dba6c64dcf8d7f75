import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';
import type { Permission, Role } from '../permissions';
import type { Conditions } from './conditions';
import { scopeColumns, scopeFromColumns, type Scope } from './scope';

export type GrantSource = 'grant' | 'delegation' | 'break-glass';

/** Access beyond a user's base role. A grant names a role, or (a delegation) a list of permissions. */
export interface Grant {
  id: string;
  userId: string;
  role: string | null;
  /** Set for delegations: the delegated permissions, still cut to what the delegator holds. */
  permissions: Permission[] | null;
  scope: Scope;
  conditions: Conditions | null;
  source: GrantSource;
  grantedBy: string | null;
  justification: string | null;
  createdAt: string;
  expiresAt: string | null;
  renewedAt: string | null;
  renewedBy: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
  revokeReason: string | null;
}

export type NewGrant = Pick<
  Grant,
  | 'userId'
  | 'role'
  | 'permissions'
  | 'scope'
  | 'conditions'
  | 'source'
  | 'grantedBy'
  | 'justification'
  | 'expiresAt'
>;

interface GrantRow {
  id: string;
  user_id: string;
  role: string | null;
  permissions: string | null;
  scope_type: string;
  scope_id: string | null;
  conditions: string | null;
  source: GrantSource;
  granted_by: string | null;
  justification: string | null;
  created_at: string;
  expires_at: string | null;
  renewed_at: string | null;
  renewed_by: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
  revoke_reason: string | null;
}

/** Grants in SQLite. Writes take the caller's transaction. */
export class GrantStore {
  constructor(private readonly database: Database) {}

  async create(grant: NewGrant, transaction: Transaction): Promise<Grant> {
    const stored: Grant = {
      ...grant,
      id: crypto.randomUUID(),
      createdAt: new Date().toISOString(),
      renewedAt: null,
      renewedBy: null,
      revokedAt: null,
      revokedBy: null,
      revokeReason: null,
    };
    await this.database.sequelize.query(
      `INSERT INTO access_grants (id, user_id, role, permissions, scope_type, scope_id, conditions, source,
         granted_by, justification, created_at, expires_at)
       VALUES (:id, :userId, :role, :permissions, :scope_type, :scope_id, :conditions, :source,
         :grantedBy, :justification, :createdAt, :expiresAt)`,
      {
        transaction,
        replacements: {
          ...stored,
          ...scopeColumns(stored.scope),
          permissions: stored.permissions ? JSON.stringify(stored.permissions) : null,
          conditions: stored.conditions ? JSON.stringify(stored.conditions) : null,
        },
      },
    );
    return stored;
  }

  async get(id: string, transaction?: Transaction): Promise<Grant | undefined> {
    const rows = await this.select('WHERE id = :id', { id }, transaction);
    return rows[0];
  }

  /** Grants of `userId` that are neither revoked nor expired at `at`. */
  async activeFor(userId: string, at: Date, transaction?: Transaction): Promise<Grant[]> {
    return this.select(
      'WHERE user_id = :userId AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :at)',
      { userId, at: at.toISOString() },
      transaction,
    );
  }

  /** All live grants, or those of one user; `includeEnded` adds revoked and expired ones. */
  async list(
    filter: { userId?: string; source?: GrantSource; includeEnded?: boolean },
    transaction?: Transaction,
  ): Promise<Grant[]> {
    const clauses: string[] = [];
    if (filter.userId) clauses.push('user_id = :userId');
    if (filter.source) clauses.push('source = :source');
    if (!filter.includeEnded)
      clauses.push('revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :now)');
    const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
    return this.select(
      `${where} ORDER BY created_at`,
      { ...filter, now: new Date().toISOString() },
      transaction,
    );
  }

  async revoke(
    id: string,
    by: string | null,
    reason: string,
    transaction: Transaction,
  ): Promise<void> {
    await this.database.sequelize.query(
      `UPDATE access_grants SET revoked_at = :now, revoked_by = :by, revoke_reason = :reason
       WHERE id = :id AND revoked_at IS NULL`,
      { transaction, replacements: { id, by, reason, now: new Date().toISOString() } },
    );
  }

  async renew(id: string, expiresAt: Date, by: string, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query(
      'UPDATE access_grants SET expires_at = :expiresAt, renewed_at = :now, renewed_by = :by WHERE id = :id',
      {
        transaction,
        replacements: { id, by, expiresAt: expiresAt.toISOString(), now: new Date().toISOString() },
      },
    );
  }

  /** The base role and disabled flag of a user, for a delegator whose grants back a delegation. */
  async userRole(
    userId: string,
    transaction?: Transaction,
  ): Promise<{ role: Role; disabled: boolean } | undefined> {
    const rows = await this.database.sequelize.query<{ role: Role; disabled: number | boolean }>(
      'SELECT role, disabled FROM users WHERE id = :userId',
      { type: QueryTypes.SELECT, transaction, replacements: { userId } },
    );
    return rows[0] ? { role: rows[0].role, disabled: Boolean(rows[0].disabled) } : undefined;
  }

  /** Counts the enabled admins other than `userId`: the people who could approve or take over. */
  async otherAdmins(userId: string, transaction?: Transaction): Promise<number> {
    const [{ count }] = await this.database.sequelize.query<{ count: number }>(
      "SELECT COUNT(*) AS count FROM users WHERE role = 'admin' AND disabled = 0 AND id != :userId",
      { type: QueryTypes.SELECT, transaction, replacements: { userId } },
    );
    return count;
  }

  private async select(
    clause: string,
    replacements: Record<string, unknown>,
    transaction?: Transaction,
  ): Promise<Grant[]> {
    const rows = await this.database.sequelize.query<GrantRow>(
      `SELECT * FROM access_grants ${clause}`,
      {
        type: QueryTypes.SELECT,
        transaction,
        replacements,
      },
    );
    return rows.map(toGrant);
  }
}

function toGrant(row: GrantRow): Grant {
  return {
    id: row.id,
    userId: row.user_id,
    role: row.role,
    permissions: row.permissions ? (JSON.parse(row.permissions) as Permission[]) : null,
    scope: scopeFromColumns(row.scope_type, row.scope_id),
    conditions: row.conditions ? (JSON.parse(row.conditions) as Conditions) : null,
    source: row.source,
    grantedBy: row.granted_by,
    justification: row.justification,
    createdAt: isoOf(row.created_at)!,
    expiresAt: isoOf(row.expires_at),
    renewedAt: isoOf(row.renewed_at),
    renewedBy: row.renewed_by,
    revokedAt: isoOf(row.revoked_at),
    revokedBy: row.revoked_by,
    revokeReason: row.revoke_reason,
  };
}

/** SQLite returns DATE columns as text in one of two shapes; the API speaks ISO 8601. */
function isoOf(value: string | Date | null): string | null {
  if (value === null) return null;
  return new Date(value).toISOString();
}
