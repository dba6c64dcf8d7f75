import crypto from 'node:crypto';

import { generateSecret, generateURI, verify } from 'otplib';
import QRCode from 'qrcode';
import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import { problems } from '../http/problem';
import { escrowTotpDataKey, wrapTotpDataKey } from '../keys/totp-keys';
import type { Database } from '../platform/database';

/** RFC 6238 parameters shared with authenticator apps: HMAC-SHA1, 6 digits, 30-second steps. */
const periodSeconds = 30;

/** Issuer shown by authenticator apps next to the account name. */
const issuer = 'Prompt Bank Appliance';

/** Enrolment data shown once to the user. No route returns the secret again. */
export interface TotpEnrolment {
  secret: string;
  otpauthUri: string;
  qrCodeDataUrl: string;
}

interface TotpRow {
  wrapped_key: Buffer;
  master_key_uri: string;
  sealed_secret: Buffer;
  confirmed_at: string | null;
  last_used_step: number | null;
}

/**
 * TOTP authenticators (RFC 6238). Each secret is sealed with AES-256-GCM under
 * a random per-user data key that is stored only wrapped by the HSM master
 * key. A code is accepted for the current step or one step either side, and
 * never for a step at or before the last one used (replay).
 */
export class TotpAuthenticators {
  constructor(
    private readonly database: Database,
    private readonly keys: KeyProvider | undefined,
  ) {}

  /** Creates an unconfirmed authenticator, replacing an earlier unconfirmed one. Throws 409 when one is active. */
  async enrol(
    user: { id: string; username: string },
    transaction: Transaction,
  ): Promise<TotpEnrolment> {
    const existing = await this.find(user.id, transaction);
    if (existing?.confirmed_at)
      throw problems.conflict(
        'TOTP is already active for this account. To replace it, turn it off with DELETE /api/v1/auth/mfa/totp, or ask an admin to reset your second factors if the device is lost.',
      );

    const secret = generateSecret();
    const dataKey = crypto.randomBytes(32);
    // Key lifecycle: wrapped under the active master key version and escrowed for recovery.
    const { wrapped, masterKeyUri } = await wrapTotpDataKey(
      this.database,
      this.keyProvider(),
      dataKey,
      transaction,
    );
    const sealed = seal(dataKey, user.id, secret);

    await this.database.sequelize.query('DELETE FROM user_totp WHERE user_id = :userId', {
      transaction,
      replacements: { userId: user.id },
    });
    await this.database.sequelize.query(
      `INSERT INTO user_totp (user_id, wrapped_key, master_key_uri, sealed_secret, confirmed_at, last_used_step, created_at)
       VALUES (:userId, :wrapped, :masterKeyUri, :sealed, NULL, NULL, :now)`,
      {
        transaction,
        replacements: {
          userId: user.id,
          wrapped,
          masterKeyUri,
          sealed,
          now: new Date().toISOString(),
        },
      },
    );

    await escrowTotpDataKey(this.database, user.id, dataKey, transaction);

    const otpauthUri = generateURI({ issuer, label: user.username, secret, period: periodSeconds });
    const qrCodeDataUrl = await QRCode.toDataURL(otpauthUri, { errorCorrectionLevel: 'M' });
    return { secret, otpauthUri, qrCodeDataUrl };
  }

  /** Reports whether the user has a confirmed authenticator, so sign-in needs a second factor. */
  async isActive(userId: string): Promise<boolean> {
    const row = await this.find(userId);
    return Boolean(row?.confirmed_at);
  }

  /**
   * Checks a code and, when it matches, records its time step in `transaction`
   * so the same code cannot be used again. `pending` selects an unconfirmed
   * authenticator (enrolment) instead of an active one (sign-in).
   */
  async verifyCode(
    userId: string,
    code: string,
    transaction: Transaction,
    options: { pending: boolean },
  ): Promise<boolean> {
    const row = await this.find(userId, transaction);
    if (!row || Boolean(row.confirmed_at) === options.pending) return false;

    const dataKey = this.keyProvider().unwrapDataKey(
      Buffer.from(row.wrapped_key),
      row.master_key_uri,
    );
    const secret = open(dataKey, userId, Buffer.from(row.sealed_secret));
    const result = await verify({
      secret,
      token: code,
      period: periodSeconds,
      epochTolerance: periodSeconds,
      ...(row.last_used_step !== null ? { afterTimeStep: row.last_used_step } : {}),
    });
    // The TOTP strategy reports the matched step; a result without one is treated as no match.
    if (!result.valid || !('timeStep' in result)) return false;

    await this.database.sequelize.query(
      `UPDATE user_totp SET last_used_step = :step,
         confirmed_at = COALESCE(confirmed_at, :now) WHERE user_id = :userId`,
      {
        transaction,
        replacements: { userId, step: result.timeStep, now: new Date().toISOString() },
      },
    );
    return true;
  }

  /** Deletes the user's authenticator, confirmed or not, in `transaction`; returns how many rows were deleted (0 or 1). */
  async remove(userId: string, transaction: Transaction): Promise<number> {
    const rows = await this.database.sequelize.query<{ n: number }>(
      'SELECT COUNT(*) AS n FROM user_totp WHERE user_id = :userId',
      { type: QueryTypes.SELECT, transaction, replacements: { userId } },
    );
    await this.database.sequelize.query('DELETE FROM user_totp WHERE user_id = :userId', {
      transaction,
      replacements: { userId },
    });

    // The escrow copy of the removed data key (totp_escrow, when the recovery-key migration
    // created it) would otherwise look like the escrow of the user's next authenticator.
    const escrow = await this.database.sequelize.query(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'totp_escrow'",
      { type: QueryTypes.SELECT, transaction },
    );
    if (escrow.length)
      await this.database.sequelize.query('DELETE FROM totp_escrow WHERE user_id = :userId', {
        transaction,
        replacements: { userId },
      });
    return rows[0].n;
  }

  private async find(userId: string, transaction?: Transaction): Promise<TotpRow | undefined> {
    const rows = await this.database.sequelize.query<TotpRow>(
      'SELECT wrapped_key, master_key_uri, sealed_secret, confirmed_at, last_used_step FROM user_totp WHERE user_id = :userId',
      { type: QueryTypes.SELECT, transaction, replacements: { userId } },
    );
    return rows[0];
  }

  private keyProvider(): KeyProvider {
    if (!this.keys)
      throw problems.hsmUnavailable('No HSM key provider is configured for TOTP secrets.');
    return this.keys;
  }
}

/** Seals the base32 secret as IV (12 bytes) | tag (16 bytes) | ciphertext, bound to the user id. */
function seal(dataKey: Buffer, userId: string, secret: string): Buffer {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', dataKey, iv);
  cipher.setAAD(Buffer.from(`totp:${userId}`));
  const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ciphertext]);
}

function open(dataKey: Buffer, userId: string, sealed: Buffer): string {
  const decipher = crypto.createDecipheriv('aes-256-gcm', dataKey, sealed.subarray(0, 12));
  decipher.setAAD(Buffer.from(`totp:${userId}`));
  decipher.setAuthTag(sealed.subarray(12, 28));
  return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]).toString('utf8');
}
