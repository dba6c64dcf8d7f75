import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';

/** Long-lived cookie naming the browser; `__Host-` makes browsers insist on Secure, Path=/ and no Domain. */
export const deviceCookieName = '__Host-appliance_device';

/** Cookie lifetime in days, so a browser that returns within about a year still counts as known. */
export const deviceCookieDays = 400;

/** A browser that signed in, as its owner sees it. */
export interface Device {
  id: string;
  userAgent: string | null;
  lastIp: string;
  createdAt: string;
  lastSeenAt: string;
  /** When the owner marked it trusted; null when it is not trusted or its trust ended. */
  trustedAt: string | null;
}

interface DeviceRow {
  id: string;
  user_id: string;
  user_agent: string | null;
  last_ip: string;
  created_at: string;
  last_seen_at: string;
  trusted_at: string | null;
  trust_stamp: string | null;
  revoked_at: string | null;
}

/**
 * Browsers that signed in, one row per device cookie. Only the SHA-256 of the
 * cookie is stored. Trust is bound to a stamp of the user's password hash,
 * TOTP enrolment and security keys. A password change, an MFA reset or a
 * change of security keys therefore ends it, and the code that makes the
 * change need not clear it.
 */
export class DeviceStore {
  constructor(
    private readonly database: Database,
    private readonly trustDays: number,
  ) {}

  /** Returns the live (not revoked) device of `userId` the cookie names, or undefined. */
  async identify(cookie: string | undefined, userId: string): Promise<DeviceRow | undefined> {
    if (!cookie || cookie.length > 128) return undefined;

    const rows = await this.database.sequelize.query<DeviceRow>(
      `SELECT * FROM user_devices
       WHERE cookie_hash = :hash AND user_id = :userId AND revoked_at IS NULL`,
      { type: QueryTypes.SELECT, replacements: { hash: hashCookie(cookie), userId } },
    );
    return rows[0];
  }

  /** True when the device is marked trusted, the mark is younger than the trust period and the stamp still matches. */
  async isTrusted(device: DeviceRow | undefined, now = new Date()): Promise<boolean> {
    if (!device?.trusted_at || !device.trust_stamp) return false;
    if (now.getTime() - Date.parse(device.trusted_at) > this.trustDays * 86_400_000) return false;
    return device.trust_stamp === (await this.trustStampOf(device.user_id));
  }

  /**
   * Records a sign-in on the device the cookie names, or registers a new
   * device and returns the cookie value to set. A cookie of another user or of
   * a revoked device is replaced by a new one.
   */
  async recordSignIn(
    cookie: string | undefined,
    userId: string,
    client: { sourceIp: string; userAgent?: string },
    transaction: Transaction,
  ): Promise<{ deviceId: string; newCookie?: string }> {
    const now = new Date().toISOString();
    const known = await this.identify(cookie, userId);
    if (known) {
      await this.database.sequelize.query(
        'UPDATE user_devices SET last_seen_at = :now, last_ip = :ip, user_agent = :agent WHERE id = :id',
        {
          transaction,
          replacements: {
            now,
            ip: client.sourceIp.slice(0, 64),
            agent: client.userAgent?.slice(0, 256) ?? null,
            id: known.id,
          },
        },
      );
      return { deviceId: known.id };
    }

    // The browser's old cookie belongs to another user or to a revoked device: revoke its row, then issue a new cookie.
    if (cookie && cookie.length <= 128)
      await this.database.sequelize.query(
        'UPDATE user_devices SET revoked_at = COALESCE(revoked_at, :now) WHERE cookie_hash = :hash',
        { transaction, replacements: { now, hash: hashCookie(cookie) } },
      );

    const newCookie = crypto.randomBytes(32).toString('base64url');
    const deviceId = crypto.randomUUID();
    await this.database.sequelize.query(
      `INSERT INTO user_devices (id, user_id, cookie_hash, user_agent, last_ip, created_at, last_seen_at)
       VALUES (:id, :userId, :hash, :agent, :ip, :now, :now)`,
      {
        transaction,
        replacements: {
          id: deviceId,
          userId,
          hash: hashCookie(newCookie),
          agent: client.userAgent?.slice(0, 256) ?? null,
          ip: client.sourceIp.slice(0, 64),
          now,
        },
      },
    );
    return { deviceId, newCookie };
  }

  /** Lists the user's live devices, newest sign-in first, with trust shown only while it holds. */
  async list(userId: string): Promise<Device[]> {
    const rows = await this.database.sequelize.query<DeviceRow>(
      `SELECT * FROM user_devices WHERE user_id = :userId AND revoked_at IS NULL
       ORDER BY last_seen_at DESC`,
      { type: QueryTypes.SELECT, replacements: { userId } },
    );
    const devices: Device[] = [];
    for (const row of rows) {
      devices.push({
        id: row.id,
        userAgent: row.user_agent,
        lastIp: row.last_ip,
        createdAt: row.created_at,
        lastSeenAt: row.last_seen_at,
        trustedAt: (await this.isTrusted(row)) ? row.trusted_at : null,
      });
    }
    return devices;
  }

  /** Marks a live device of the user trusted; returns false when there is none with that id. */
  async trust(userId: string, id: string, transaction: Transaction): Promise<boolean> {
    const stamp = await this.trustStampOf(userId, transaction);
    const [, affected] = await this.database.sequelize.query(
      `UPDATE user_devices SET trusted_at = :now, trust_stamp = :stamp
       WHERE id = :id AND user_id = :userId AND revoked_at IS NULL`,
      {
        transaction,
        type: QueryTypes.UPDATE,
        replacements: { now: new Date().toISOString(), stamp, id, userId },
      },
    );
    return affected > 0;
  }

  /** Revokes a live device of the user; its cookie then counts as unknown. Returns false when there is none. */
  async revoke(userId: string, id: string, transaction: Transaction): Promise<boolean> {
    const [, affected] = await this.database.sequelize.query(
      `UPDATE user_devices SET revoked_at = :now, trusted_at = NULL, trust_stamp = NULL
       WHERE id = :id AND user_id = :userId AND revoked_at IS NULL`,
      {
        transaction,
        type: QueryTypes.UPDATE,
        replacements: { now: new Date().toISOString(), id, userId },
      },
    );
    return affected > 0;
  }

  /** Ends the trust of all the user's devices, for callers that reset credentials explicitly. */
  async endTrustFor(userId: string, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query(
      'UPDATE user_devices SET trusted_at = NULL, trust_stamp = NULL WHERE user_id = :userId',
      { transaction, replacements: { userId } },
    );
  }

  /** Hashes the facts trust depends on: the password hash, the TOTP enrolment time and the set of security keys. */
  private async trustStampOf(userId: string, transaction?: Transaction): Promise<string> {
    const rows = await this.database.sequelize.query<{
      password_hash: string;
      totp_confirmed_at: string | null;
    }>(
      `SELECT users.password_hash, user_totp.confirmed_at AS totp_confirmed_at
       FROM users LEFT JOIN user_totp ON user_totp.user_id = users.id
       WHERE users.id = :userId`,
      { type: QueryTypes.SELECT, transaction, replacements: { userId } },
    );
    const keys = await this.database.sequelize.query<{ id: string }>(
      'SELECT id FROM webauthn_credentials WHERE user_id = :userId ORDER BY id',
      { type: QueryTypes.SELECT, transaction, replacements: { userId } },
    );
    const facts = rows.length
      ? [
          rows[0].password_hash,
          rows[0].totp_confirmed_at ?? 'no-totp',
          ...keys.map((key) => key.id),
        ]
      : ['no-user'];
    return crypto.createHash('sha256').update(facts.join('\n')).digest('hex');
  }
}

function hashCookie(cookie: string): string {
  return crypto.createHash('sha256').update(cookie).digest('hex');
}
