import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../platform/database';
import type { Permission } from './permissions';

/** Every key starts with this, so a leaked key is recognisable in logs and scanners. */
export const apiKeyPrefix = 'pba_';

/** `pba_` and 32 random bytes in base64url (43 characters). */
const apiKeyPattern = /^pba_[A-Za-z0-9_-]{43}$/;

/** Maximum key lifetime in milliseconds (365 days). */
export const maxApiKeyLifetimeMs = 365 * 24 * 60 * 60 * 1000;

/** A key as its owner sees it: never the key itself, only its last 4 characters. */
export interface ApiKeySummary {
  id: string;
  name: string;
  hint: string;
  permissions: Permission[];
  /** Projects the key is limited to; null reaches whatever its permissions reach. */
  projectIds: string[] | null;
  createdAt: string;
  expiresAt: string;
  lastUsedAt: string | null;
  lastUsedIp: string | null;
}

interface ApiKeyRow {
  id: string;
  user_id: string;
  name: string;
  last_four: string;
  permissions: string;
  project_ids: string | null;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
  last_used_ip: string | null;
}

/**
 * API keys for scripts and integrations. The key is shown once at creation;
 * the table holds only its SHA-256, so a copy of the database yields no usable key.
 */
export class ApiKeyStore {
  constructor(private readonly database: Database) {}

  /** Creates a key for `userId`; returns the key itself, which is never readable again. */
  async create(
    userId: string,
    input: { name: string; permissions: Permission[]; projectIds?: string[]; expiresAt: Date },
    transaction: Transaction,
  ): Promise<{ key: string; summary: ApiKeySummary }> {
    const key = apiKeyPrefix + crypto.randomBytes(32).toString('base64url');
    const id = crypto.randomUUID();
    const now = new Date().toISOString();

    await this.database.sequelize.query(
      `INSERT INTO api_keys (id, user_id, name, key_hash, last_four, permissions, project_ids, created_at, expires_at)
       VALUES (:id, :userId, :name, :keyHash, :lastFour, :permissions, :projectIds, :now, :expiresAt)`,
      {
        transaction,
        replacements: {
          id,
          userId,
          name: input.name,
          keyHash: hashKey(key),
          lastFour: key.slice(-4),
          permissions: JSON.stringify(input.permissions),
          projectIds: input.projectIds ? JSON.stringify(input.projectIds) : null,
          now,
          expiresAt: input.expiresAt.toISOString(),
        },
      },
    );
    const [row] = await this.rows('id = :id', { id }, transaction);
    return { key, summary: present(row) };
  }

  /** Lists a user's keys that are not revoked, expired ones included so their owner sees them lapse. */
  async list(userId: string): Promise<ApiKeySummary[]> {
    const rows = await this.rows('user_id = :userId AND revoked_at IS NULL', { userId });
    return rows.map(present);
  }

  /** Revokes one of a user's keys; false when the user has no such live key. */
  async revoke(userId: string, id: string, transaction: Transaction): Promise<boolean> {
    const rows = await this.rows(
      'id = :id AND user_id = :userId AND revoked_at IS NULL',
      { id, userId },
      transaction,
    );
    if (!rows.length) return false;

    await this.database.sequelize.query('UPDATE api_keys SET revoked_at = :now WHERE id = :id', {
      transaction,
      replacements: { id, now: new Date().toISOString() },
    });
    return true;
  }

  /**
   * Resolves a presented key to its owner, id and permissions, and records its
   * use; undefined when the key is malformed, unknown, revoked or expired.
   */
  async resolve(
    presented: string,
    sourceIp: string,
  ): Promise<
    | { id: string; userId: string; permissions: Permission[]; projectIds: string[] | null }
    | undefined
  > {
    if (!apiKeyPattern.test(presented)) return undefined;

    const [row] = await this.rows('key_hash = :keyHash AND revoked_at IS NULL', {
      keyHash: hashKey(presented),
    });
    if (!row || Date.now() >= Date.parse(row.expires_at)) return undefined;

    await this.database.write((transaction) =>
      this.database.sequelize.query(
        'UPDATE api_keys SET last_used_at = :now, last_used_ip = :sourceIp WHERE id = :id',
        { transaction, replacements: { id: row.id, now: new Date().toISOString(), sourceIp } },
      ),
    );
    return {
      id: row.id,
      userId: row.user_id,
      permissions: parsePermissions(row.permissions),
      projectIds: row.project_ids ? (JSON.parse(row.project_ids) as string[]) : null,
    };
  }

  /** Returns the ids among `projectIds` that name no project. */
  async unknownProjects(projectIds: readonly string[]): Promise<string[]> {
    const rows = await this.database.sequelize.query<{ id: string }>(
      'SELECT id FROM projects WHERE id IN (:projectIds)',
      { type: QueryTypes.SELECT, replacements: { projectIds: [...projectIds] } },
    );
    const known = new Set(rows.map((row) => row.id));
    return projectIds.filter((id) => !known.has(id));
  }

  private rows(
    where: string,
    replacements: Record<string, string>,
    transaction?: Transaction,
  ): Promise<ApiKeyRow[]> {
    return this.database.sequelize.query<ApiKeyRow>(
      `SELECT * FROM api_keys WHERE ${where} ORDER BY created_at DESC, rowid DESC`,
      { type: QueryTypes.SELECT, transaction, replacements },
    );
  }
}

/** Tells whether a bearer credential has the shape of an API key, before any lookup. */
export function looksLikeApiKey(value: string): boolean {
  return apiKeyPattern.test(value);
}

function present(row: ApiKeyRow): ApiKeySummary {
  return {
    id: row.id,
    name: row.name,
    hint: `${apiKeyPrefix}…${row.last_four}`,
    permissions: parsePermissions(row.permissions),
    projectIds: row.project_ids ? (JSON.parse(row.project_ids) as string[]) : null,
    createdAt: new Date(row.created_at).toISOString(),
    expiresAt: new Date(row.expires_at).toISOString(),
    lastUsedAt: row.last_used_at ? new Date(row.last_used_at).toISOString() : null,
    lastUsedIp: row.last_used_ip,
  };
}

function parsePermissions(stored: string): Permission[] {
  return JSON.parse(stored) as Permission[];
}

function hashKey(key: string): string {
  return crypto.createHash('sha256').update(key).digest('hex');
}
