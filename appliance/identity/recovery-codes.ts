import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../platform/database';

/** Number of recovery codes issued when TOTP is activated. */
export const recoveryCodeCount = 10;

/** Letters without look-alikes (no 0/O, 1/I/L), so a code read off paper types back right. */
const alphabet = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';

/**
 * One-time recovery codes. Each has 16 random characters (about 79 bits), so
 * an unsalted SHA-256 is enough to store it: the code cannot be guessed from
 * its hash the way a chosen password can.
 */
export class RecoveryCodes {
  constructor(private readonly database: Database) {}

  /** Replaces the user's codes with fresh ones and returns them, formatted `XXXX-XXXX-XXXX-XXXX`. */
  async issue(userId: string, transaction: Transaction): Promise<string[]> {
    const codes = Array.from({ length: recoveryCodeCount }, newCode);

    await this.database.sequelize.query('DELETE FROM user_recovery_codes WHERE user_id = :userId', {
      transaction,
      replacements: { userId },
    });
    const now = new Date().toISOString();
    for (const code of codes) {
      await this.database.sequelize.query(
        `INSERT INTO user_recovery_codes (code_hash, user_id, used_at, created_at)
         VALUES (:hash, :userId, NULL, :now)`,
        { transaction, replacements: { hash: hashCode(code), userId, now } },
      );
    }
    return codes;
  }

  /** Marks an unused code of the user as used in `transaction`; returns false when it is unknown or used. */
  async redeem(userId: string, code: string, transaction: Transaction): Promise<boolean> {
    const hash = hashCode(code);
    const rows = await this.database.sequelize.query<{ code_hash: string }>(
      'SELECT code_hash FROM user_recovery_codes WHERE code_hash = :hash AND user_id = :userId AND used_at IS NULL',
      { type: QueryTypes.SELECT, transaction, replacements: { hash, userId } },
    );
    if (!rows.length) return false;

    await this.database.sequelize.query(
      'UPDATE user_recovery_codes SET used_at = :now WHERE code_hash = :hash',
      { transaction, replacements: { hash, now: new Date().toISOString() } },
    );
    return true;
  }

  /** Deletes all the user's codes in `transaction`; returns how many of them were still unused. */
  async removeAll(userId: string, transaction: Transaction): Promise<number> {
    const rows = await this.database.sequelize.query<{ n: number }>(
      'SELECT COUNT(*) AS n FROM user_recovery_codes WHERE user_id = :userId AND used_at IS NULL',
      { type: QueryTypes.SELECT, transaction, replacements: { userId } },
    );
    await this.database.sequelize.query('DELETE FROM user_recovery_codes WHERE user_id = :userId', {
      transaction,
      replacements: { userId },
    });
    return rows[0].n;
  }
}

function newCode(): string {
  const characters = Array.from({ length: 16 }, () => alphabet[crypto.randomInt(alphabet.length)]);
  return characters.join('').replace(/(.{4})(?!$)/g, '$1-');
}

/** Hashes a code after removing dashes, spaces and case, so `abcd efgh ...` matches `ABCD-EFGH-...`. */
function hashCode(code: string): string {
  const canonical = code.replace(/[\s-]/g, '').toUpperCase();
  return crypto.createHash('sha256').update(canonical).digest('hex');
}
