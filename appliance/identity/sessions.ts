import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../platform/database';

/**
 * Cookie holding the session token. The `__Host-` prefix makes browsers
 * insist on Secure, Path=/ and no Domain attribute.
 */
export const sessionCookieName = '__Host-appliance_session';

export interface SessionPolicy {
  idleTimeoutSeconds: number;
  absoluteTimeoutSeconds: number;
  /** Open sessions per user; a login beyond it closes the oldest ones. */
  maxPerUser: number;
}

export const defaultSessionPolicy: SessionPolicy = {
  idleTimeoutSeconds: 30 * 60,
  absoluteTimeoutSeconds: 12 * 60 * 60,
  maxPerUser: 10,
};

/** A session as its owner sees it: named by its public id, never by its token or token hash. */
export interface SessionSummary {
  id: string;
  createdAt: string;
  lastSeenAt: string;
  sourceIp: string;
  userAgent: string | null;
  current: boolean;
}

interface SessionRow {
  id: string;
  public_id: string;
  user_id: string;
  source_ip: string;
  user_agent: string | null;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
}

/** Minimum gap between two writes of a session's last-seen time, so reads do not each write it. */
const touchIntervalMs = 60_000;

/**
 * Server-side sessions. The browser holds a random token; the table holds only
 * its SHA-256, so a copy of the database does not yield usable sessions.
 */
export class SessionStore {
  constructor(
    private readonly database: Database,
    private readonly policy: SessionPolicy = defaultSessionPolicy,
  ) {}

  /** Opens a session and returns the token for the cookie. */
  async open(
    userId: string,
    client: { sourceIp: string; userAgent?: string },
    transaction: Transaction,
  ): Promise<{ token: string; expiresAt: Date }> {
    const token = crypto.randomBytes(32).toString('base64url');
    const now = new Date();
    const expiresAt = new Date(now.getTime() + this.policy.absoluteTimeoutSeconds * 1000);

    await this.database.sequelize.query(
      `INSERT INTO sessions (id, public_id, user_id, source_ip, user_agent, created_at, last_seen_at, expires_at)
       VALUES (:id, :publicId, :userId, :sourceIp, :userAgent, :now, :now, :expiresAt)`,
      {
        transaction,
        replacements: {
          id: hashToken(token),
          publicId: crypto.randomUUID(),
          userId,
          sourceIp: client.sourceIp,
          userAgent: client.userAgent?.slice(0, 512) ?? null,
          now: now.toISOString(),
          expiresAt: expiresAt.toISOString(),
        },
      },
    );
    await this.closeOldest(userId, transaction);
    return { token, expiresAt };
  }

  /** Lists a user's open sessions, newest first; `currentToken` marks the caller's own. */
  async list(userId: string, currentToken?: string): Promise<SessionSummary[]> {
    const current = currentToken ? hashToken(currentToken) : undefined;
    const rows = await this.database.sequelize.query<SessionRow>(
      'SELECT * FROM sessions WHERE user_id = :userId ORDER BY created_at DESC, rowid DESC',
      { type: QueryTypes.SELECT, replacements: { userId } },
    );
    return rows.map((row) => ({
      id: row.public_id,
      createdAt: new Date(row.created_at).toISOString(),
      lastSeenAt: new Date(row.last_seen_at).toISOString(),
      sourceIp: row.source_ip,
      userAgent: row.user_agent,
      current: row.id === current,
    }));
  }

  /** Closes one of a user's sessions by its public id; false when the user has no such session. */
  async closeOwn(userId: string, publicId: string, transaction: Transaction): Promise<boolean> {
    const rows = await this.database.sequelize.query<{ id: string }>(
      'SELECT id FROM sessions WHERE user_id = :userId AND public_id = :publicId',
      { type: QueryTypes.SELECT, transaction, replacements: { userId, publicId } },
    );
    if (!rows.length) return false;

    await this.closeById(rows[0].id, transaction);
    return true;
  }

  /** Returns the user id behind a live token, or undefined when it is unknown, idle too long or expired. */
  async resolve(token: string): Promise<string | undefined> {
    const id = hashToken(token);
    const rows = await this.database.sequelize.query<SessionRow>(
      'SELECT * FROM sessions WHERE id = :id',
      {
        type: QueryTypes.SELECT,
        replacements: { id },
      },
    );
    if (!rows.length) return undefined;

    const row = rows[0];
    const now = Date.now();
    const idleSince = Date.parse(row.last_seen_at);
    if (
      now > Date.parse(row.expires_at) ||
      now - idleSince > this.policy.idleTimeoutSeconds * 1000
    ) {
      await this.database.write((transaction) => this.closeById(id, transaction));
      return undefined;
    }

    if (now - idleSince > touchIntervalMs) {
      await this.database.write((transaction) =>
        this.database.sequelize.query('UPDATE sessions SET last_seen_at = :now WHERE id = :id', {
          transaction,
          replacements: { id, now: new Date(now).toISOString() },
        }),
      );
    }
    return row.user_id;
  }

  /**
   * Replaces a session with a new token for the same user, for a change of
   * privilege (session fixation); the old token stops working.
   */
  async rotate(
    token: string,
    client: { sourceIp: string; userAgent?: string },
    transaction: Transaction,
  ): Promise<{ token: string; expiresAt: Date } | undefined> {
    const rows = await this.database.sequelize.query<SessionRow>(
      'SELECT * FROM sessions WHERE id = :id',
      { type: QueryTypes.SELECT, transaction, replacements: { id: hashToken(token) } },
    );
    if (!rows.length) return undefined;

    await this.closeById(rows[0].id, transaction);
    return this.open(rows[0].user_id, client, transaction);
  }

  close(token: string, transaction: Transaction): Promise<void> {
    return this.closeById(hashToken(token), transaction);
  }

  /** Ends every session of a user, for example after a password change. */
  async closeAllFor(userId: string, transaction: Transaction, exceptToken?: string): Promise<void> {
    await this.database.sequelize.query(
      'DELETE FROM sessions WHERE user_id = :userId AND id != :keep',
      {
        transaction,
        replacements: { userId, keep: exceptToken ? hashToken(exceptToken) : '' },
      },
    );
  }

  /** Keeps the newest `maxPerUser` sessions of a user and closes the rest. */
  private async closeOldest(userId: string, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query(
      `DELETE FROM sessions WHERE user_id = :userId AND id NOT IN (
         SELECT id FROM sessions WHERE user_id = :userId
         ORDER BY created_at DESC, rowid DESC LIMIT :limit)`,
      { transaction, replacements: { userId, limit: this.policy.maxPerUser } },
    );
  }

  private async closeById(id: string, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query('DELETE FROM sessions WHERE id = :id', {
      transaction,
      replacements: { id },
    });
  }
}

function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}
