import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';

/** Cookie binding a SAML sign-in in progress to the browser that started it. */
export const samlAttemptCookieName = '__Host-appliance_saml';

/** How long a started sign-in may take at the identity provider, in seconds. */
export const samlAttemptLifetimeSeconds = 10 * 60;

/** Values the assertion consumer service checks a response against. They are never sent to the browser. */
export interface SamlLoginAttempt {
  /** ID of our AuthnRequest, which the response's InResponseTo must equal. */
  requestId: string;
  /** IssueInstant of our AuthnRequest (ISO 8601). */
  issuedAt: string;
  spEntityId: string;
  acsUrl: string;
}

/** The two random values handed to the browser. RelayState travels through the provider and the binding stays in a cookie. */
export interface AttemptHandles {
  relayState: string;
  binding: string;
}

/** Draws the RelayState and binding values of a new attempt, 256 random bits each. */
export function newAttemptHandles(): AttemptHandles {
  return {
    relayState: crypto.randomBytes(32).toString('base64url'),
    binding: crypto.randomBytes(32).toString('base64url'),
  };
}

interface AttemptRow {
  browser_binding: string;
  request_id: string;
  issued_at: string;
  sp_entity_id: string;
  acs_url: string;
  expires_at: string;
}

/**
 * SAML sign-ins in progress. The table stores SHA-256 hashes of the RelayState
 * and of the browser's binding cookie, never the values. An attempt is read
 * once: `take` deletes it whether or not it is still valid.
 */
export class SamlLoginAttempts {
  constructor(private readonly database: Database) {}

  /** Stores an attempt under the hashes of `handles` (made by `newAttemptHandles`). */
  async save(
    handles: AttemptHandles,
    attempt: SamlLoginAttempt,
    transaction: Transaction,
  ): Promise<void> {
    const now = new Date();

    // Expired attempts of browsers that never came back go with the next save.
    await this.database.sequelize.query('DELETE FROM saml_login_attempts WHERE expires_at < :now', {
      transaction,
      replacements: { now: now.toISOString() },
    });
    await this.database.sequelize.query(
      `INSERT INTO saml_login_attempts
         (id, browser_binding, request_id, issued_at, sp_entity_id, acs_url, expires_at)
       VALUES (:id, :binding, :requestId, :issuedAt, :spEntityId, :acsUrl, :expiresAt)`,
      {
        transaction,
        replacements: {
          ...attempt,
          id: sha256(handles.relayState),
          binding: sha256(handles.binding),
          expiresAt: new Date(now.getTime() + samlAttemptLifetimeSeconds * 1000).toISOString(),
        },
      },
    );
  }

  /**
   * Deletes and returns the attempt behind `handles`. Returns undefined when
   * there is none (never started, already used), it expired, or the binding
   * cookie belongs to another browser. Runs in its own write so the attempt
   * stays used even when the sign-in is then rejected.
   */
  take(handles: AttemptHandles): Promise<SamlLoginAttempt | undefined> {
    const id = sha256(handles.relayState);
    return this.database.write(async (transaction) => {
      const rows = await this.database.sequelize.query<AttemptRow>(
        'SELECT * FROM saml_login_attempts WHERE id = :id',
        { type: QueryTypes.SELECT, transaction, replacements: { id } },
      );
      if (!rows.length) return undefined;

      await this.database.sequelize.query('DELETE FROM saml_login_attempts WHERE id = :id', {
        transaction,
        replacements: { id },
      });
      const row = rows[0];
      if (Date.now() > Date.parse(row.expires_at)) return undefined;
      if (!sameHash(row.browser_binding, sha256(handles.binding))) return undefined;
      return {
        requestId: row.request_id,
        issuedAt: row.issued_at,
        spEntityId: row.sp_entity_id,
        acsUrl: row.acs_url,
      };
    });
  }
}

/**
 * IDs of assertions that already opened a session. An ID is kept until the
 * assertion's NotOnOrAfter, after which the time check rejects it anyway.
 */
export class UsedAssertions {
  constructor(private readonly database: Database) {}

  /** Records the assertion ID as used. Returns false when it was used before. */
  async markUsed(
    assertion: { id: string; issuer: string; expiresAt: Date },
    transaction: Transaction,
  ): Promise<boolean> {
    await this.database.sequelize.query(
      'DELETE FROM saml_used_assertions WHERE expires_at < :now',
      { transaction, replacements: { now: new Date().toISOString() } },
    );
    const seen = await this.database.sequelize.query(
      'SELECT assertion_id FROM saml_used_assertions WHERE assertion_id = :id',
      { type: QueryTypes.SELECT, transaction, replacements: { id: assertion.id } },
    );
    if (seen.length) return false;

    await this.database.sequelize.query(
      `INSERT INTO saml_used_assertions (assertion_id, issuer, expires_at)
       VALUES (:id, :issuer, :expiresAt)`,
      {
        transaction,
        replacements: { ...assertion, expiresAt: assertion.expiresAt.toISOString() },
      },
    );
    return true;
  }
}

function sha256(value: string): string {
  return crypto.createHash('sha256').update(value).digest('hex');
}

function sameHash(left: string, right: string): boolean {
  return (
    left.length === right.length && crypto.timingSafeEqual(Buffer.from(left), Buffer.from(right))
  );
}
