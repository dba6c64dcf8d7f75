import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../platform/database';

/** Cookie holding the token of a sign-in that waits for its second factor. */
export const mfaChallengeCookieName = '__Host-appliance_mfa_challenge';

/** Lifetime of a challenge, in seconds. */
export const mfaChallengeSeconds = 5 * 60;

/** Wrong codes a challenge accepts before it is deleted and the password must be entered again. */
const maxFailedAttempts = 5;

interface ChallengeRow {
  user_id: string;
  failed_attempts: number;
  expires_at: string;
}

/**
 * Pending sign-ins between the password and the second factor. Like
 * sessions, the table stores only the SHA-256 of the token. A challenge grants
 * no access to the API, only the right to call POST /auth/mfa/verify.
 */
export class MfaChallenges {
  constructor(private readonly database: Database) {}

  async open(
    userId: string,
    transaction: Transaction,
  ): Promise<{ token: string; expiresAt: Date }> {
    const token = crypto.randomBytes(32).toString('base64url');
    const expiresAt = new Date(Date.now() + mfaChallengeSeconds * 1000);

    await this.database.sequelize.query(
      `INSERT INTO mfa_challenges (id, user_id, failed_attempts, expires_at)
       VALUES (:id, :userId, 0, :expiresAt)`,
      {
        transaction,
        replacements: { id: hashToken(token), userId, expiresAt: expiresAt.toISOString() },
      },
    );
    return { token, expiresAt };
  }

  /** Returns the user id of a live challenge, or undefined when it is unknown or expired. */
  async resolve(token: string): Promise<string | undefined> {
    const rows = await this.database.sequelize.query<ChallengeRow>(
      'SELECT user_id, failed_attempts, expires_at FROM mfa_challenges WHERE id = :id',
      { type: QueryTypes.SELECT, replacements: { id: hashToken(token) } },
    );
    if (!rows.length || Date.now() > Date.parse(rows[0].expires_at)) return undefined;
    return rows[0].user_id;
  }

  /** Counts a wrong code; deletes the challenge once it reaches the maximum. */
  async recordFailure(token: string): Promise<void> {
    const id = hashToken(token);
    await this.database.write(async (transaction) => {
      await this.database.sequelize.query(
        'UPDATE mfa_challenges SET failed_attempts = failed_attempts + 1 WHERE id = :id',
        { transaction, replacements: { id } },
      );
      await this.database.sequelize.query(
        'DELETE FROM mfa_challenges WHERE id = :id AND failed_attempts >= :max',
        { transaction, replacements: { id, max: maxFailedAttempts } },
      );
    });
  }

  async close(token: string, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query('DELETE FROM mfa_challenges WHERE id = :id', {
      transaction,
      replacements: { id: hashToken(token) },
    });
  }
}

function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}
