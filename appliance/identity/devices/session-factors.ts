import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';

/** Second-factor methods a session can have passed. */
export type SecondFactorMethod = 'totp' | 'recovery_code' | 'webauthn';

/** Row retention: twice the 12-hour absolute session lifetime, so every older row belongs to a closed session. */
const retentionMs = 24 * 60 * 60 * 1000;

/**
 * Record of the sessions that passed a second factor, at sign-in or by a later
 * step-up, keyed by the SHA-256 of the session token. A row outlives its
 * session but is useless without the token, and is pruned after `retentionMs`.
 */
export class SessionSecondFactors {
  constructor(private readonly database: Database) {}

  async record(
    sessionToken: string,
    userId: string,
    method: SecondFactorMethod,
    transaction: Transaction,
  ): Promise<void> {
    const now = new Date();
    await this.database.sequelize.query(
      `INSERT INTO session_second_factors (session_hash, user_id, method, verified_at)
       VALUES (:hash, :userId, :method, :now)
       ON CONFLICT (session_hash) DO UPDATE SET method = :method, verified_at = :now`,
      {
        transaction,
        replacements: { hash: hashToken(sessionToken), userId, method, now: now.toISOString() },
      },
    );
    await this.database.sequelize.query(
      'DELETE FROM session_second_factors WHERE verified_at < :cutoff',
      {
        transaction,
        replacements: { cutoff: new Date(now.getTime() - retentionMs).toISOString() },
      },
    );
  }

  /** Returns the method the session passed, or undefined when it passed none. */
  async methodOf(sessionToken: string | undefined): Promise<SecondFactorMethod | undefined> {
    if (!sessionToken) return undefined;
    const rows = await this.database.sequelize.query<{ method: SecondFactorMethod }>(
      'SELECT method FROM session_second_factors WHERE session_hash = :hash',
      { type: QueryTypes.SELECT, replacements: { hash: hashToken(sessionToken) } },
    );
    return rows[0]?.method;
  }
}

function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}
