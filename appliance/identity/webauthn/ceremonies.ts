import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';

/** Purpose of a WebAuthn challenge. */
export type CeremonyPurpose = 'registration' | 'sign-in' | 'step-up';

/** Lifetime of a WebAuthn challenge, in seconds; also sent to the browser as the ceremony timeout. */
export const ceremonySeconds = 120;

/**
 * Pending WebAuthn challenges. Each is bound to a purpose and to a secret
 * that the browser already has (the session token or the MFA challenge
 * token). The next options request for the same binding replaces it. The
 * first verify attempt deletes it, whatever the outcome, so an assertion
 * cannot be replayed against it.
 */
export class WebAuthnCeremonies {
  constructor(private readonly database: Database) {}

  async begin(
    purpose: CeremonyPurpose,
    binding: string,
    userId: string,
    challenge: string,
    transaction: Transaction,
  ): Promise<void> {
    const now = new Date();
    await this.database.sequelize.query('DELETE FROM webauthn_ceremonies WHERE expires_at < :now', {
      transaction,
      replacements: { now: now.toISOString() },
    });
    await this.database.sequelize.query(
      `INSERT INTO webauthn_ceremonies (id, user_id, challenge, expires_at)
       VALUES (:id, :userId, :challenge, :expiresAt)
       ON CONFLICT (id) DO UPDATE SET user_id = :userId, challenge = :challenge, expires_at = :expiresAt`,
      {
        transaction,
        replacements: {
          id: ceremonyKey(purpose, binding),
          userId,
          challenge,
          expiresAt: new Date(now.getTime() + ceremonySeconds * 1000).toISOString(),
        },
      },
    );
  }

  /** Deletes the pending challenge and returns it when it is live and belongs to `userId`. */
  async take(
    purpose: CeremonyPurpose,
    binding: string,
    userId: string,
  ): Promise<string | undefined> {
    const id = ceremonyKey(purpose, binding);
    return this.database.write(async (transaction) => {
      const rows = await this.database.sequelize.query<{
        user_id: string;
        challenge: string;
        expires_at: string;
      }>('SELECT user_id, challenge, expires_at FROM webauthn_ceremonies WHERE id = :id', {
        type: QueryTypes.SELECT,
        transaction,
        replacements: { id },
      });
      await this.database.sequelize.query('DELETE FROM webauthn_ceremonies WHERE id = :id', {
        transaction,
        replacements: { id },
      });

      const row = rows[0];
      if (!row || row.user_id !== userId || Date.now() > Date.parse(row.expires_at))
        return undefined;
      return row.challenge;
    });
  }
}

function ceremonyKey(purpose: CeremonyPurpose, binding: string): string {
  return crypto.createHash('sha256').update(`${purpose}\n${binding}`).digest('hex');
}
