import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';

/**
 * One-time account recovery tokens: 32 random bytes, base64url in the link,
 * and only their SHA-256 in the database. A token is deleted when it is used,
 * so used and unknown tokens look the same.
 */
export class RecoveryTokens {
  constructor(
    private readonly database: Database,
    private readonly lifetimeMinutes: number,
  ) {}

  /** Issues a token for the user, replacing any earlier one, and returns it with its expiry. */
  async issue(
    userId: string,
    transaction: Transaction,
  ): Promise<{ token: string; expiresAt: Date }> {
    const token = crypto.randomBytes(32).toString('base64url');
    const now = new Date();
    const expiresAt = new Date(now.getTime() + this.lifetimeMinutes * 60_000);

    await this.database.sequelize.query(
      'DELETE FROM account_recovery_tokens WHERE user_id = :userId',
      { transaction, replacements: { userId } },
    );
    await this.database.sequelize.query(
      `INSERT INTO account_recovery_tokens (token_hash, user_id, created_at, expires_at)
       VALUES (:hash, :userId, :now, :expiresAt)`,
      {
        transaction,
        replacements: {
          hash: hashToken(token),
          userId,
          now: now.toISOString(),
          expiresAt: expiresAt.toISOString(),
        },
      },
    );
    return { token, expiresAt };
  }

  /**
   * Deletes the token and returns its user id when it is known and unexpired;
   * returns undefined otherwise. Expired rows of any user are deleted on the way.
   */
  async redeem(token: string, transaction: Transaction): Promise<string | undefined> {
    const now = new Date().toISOString();
    await this.database.sequelize.query(
      'DELETE FROM account_recovery_tokens WHERE expires_at <= :now',
      { transaction, replacements: { now } },
    );

    const hash = hashToken(token);
    const rows = await this.database.sequelize.query<{ user_id: string; expires_at: string }>(
      'SELECT user_id, expires_at FROM account_recovery_tokens WHERE token_hash = :hash',
      { type: QueryTypes.SELECT, transaction, replacements: { hash } },
    );
    if (!rows.length) return undefined;

    const [row] = rows;
    await this.database.sequelize.query(
      'DELETE FROM account_recovery_tokens WHERE user_id = :userId',
      { transaction, replacements: { userId: row.user_id } },
    );
    // Compared again here, so a stored time in another text format cannot outlive its expiry.
    return Date.now() < Date.parse(row.expires_at) ? row.user_id : undefined;
  }
}

function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}
