import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';

/** Cookie binding a sign-in in progress to the browser that started it. */
export const attemptCookieName = '__Host-appliance_oidc';

/** How long a started sign-in may take at the provider, in seconds. */
export const attemptLifetimeSeconds = 10 * 60;

/** Values the callback checks the provider's response against. They are never sent to the browser. */
export interface LoginAttempt {
  state: string;
  nonce: string;
  codeVerifier: string;
  redirectUri: string;
}

interface AttemptRow {
  state: string;
  nonce: string;
  code_verifier: string;
  redirect_uri: string;
  expires_at: string;
}

/**
 * Sign-ins in progress. The browser keeps a random binding value in a cookie,
 * and the table stores its SHA-256 with the state, nonce and PKCE verifier. An
 * attempt is read once: `take` deletes it whether or not it is still valid.
 */
export class LoginAttempts {
  constructor(private readonly database: Database) {}

  /** Stores an attempt and returns the binding value for the cookie. */
  async save(attempt: LoginAttempt, transaction: Transaction): Promise<string> {
    const binding = crypto.randomBytes(32).toString('base64url');
    const now = new Date();

    // Expired attempts of browsers that never came back go with the next save.
    await this.database.sequelize.query('DELETE FROM oidc_login_attempts WHERE expires_at < :now', {
      transaction,
      replacements: { now: now.toISOString() },
    });
    await this.database.sequelize.query(
      `INSERT INTO oidc_login_attempts (id, state, nonce, code_verifier, redirect_uri, expires_at)
       VALUES (:id, :state, :nonce, :codeVerifier, :redirectUri, :expiresAt)`,
      {
        transaction,
        replacements: {
          id: hashBinding(binding),
          ...attempt,
          expiresAt: new Date(now.getTime() + attemptLifetimeSeconds * 1000).toISOString(),
        },
      },
    );
    return binding;
  }

  /**
   * Deletes and returns the attempt behind `binding`; undefined when there is
   * none (never started, already used) or it expired. Runs in its own write so
   * the attempt stays used even when the sign-in is then rejected.
   */
  take(binding: string): Promise<LoginAttempt | undefined> {
    const id = hashBinding(binding);
    return this.database.write(async (transaction) => {
      const rows = await this.database.sequelize.query<AttemptRow>(
        'SELECT * FROM oidc_login_attempts WHERE id = :id',
        { type: QueryTypes.SELECT, transaction, replacements: { id } },
      );
      if (!rows.length) return undefined;

      await this.database.sequelize.query('DELETE FROM oidc_login_attempts WHERE id = :id', {
        transaction,
        replacements: { id },
      });
      const row = rows[0];
      if (Date.now() > Date.parse(row.expires_at)) return undefined;
      return {
        state: row.state,
        nonce: row.nonce,
        codeVerifier: row.code_verifier,
        redirectUri: row.redirect_uri,
      };
    });
  }
}

function hashBinding(binding: string): string {
  return crypto.createHash('sha256').update(binding).digest('hex');
}
