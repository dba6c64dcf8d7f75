import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import { problems } from '../../http/problem';
import type { Database } from '../../platform/database';
import type { Role } from '../permissions';
import type { IdentityService } from '../service';
import { normaliseUsername, type User } from '../users';

/** The person the provider vouched for, reduced to what the appliance keeps. */
export interface ProviderIdentity {
  issuer: string;
  subject: string;
  /** Already NFKC-normalised and checked by `usernameFromClaims`. */
  username: string;
  role: Role;
}

/** The same characters a local user name may hold (see POST /users). */
const usernamePattern = /^[\p{L}\p{N}._@-]{1,64}$/u;

/**
 * NFKC-normalises a user name from a sign-in or provisioning source like
 * local names, and throws a 400 problem naming `field` unless it contains
 * only the characters a local name may contain.
 */
export function checkedUsername(raw: string, field: string): string {
  const username = normaliseUsername(raw);
  if (usernamePattern.test(username)) return username;
  throw problems.invalidRequest(
    `${field}: may contain letters, digits and . _ @ - only, at most 64 characters; check the name and try again.`,
    [{ field, message: 'may contain letters, digits and . _ @ - only' }],
  );
}

/**
 * Picks the local user name from `preferred_username`, else `email`, NFKC
 * normalised like local names; undefined when neither gives a usable name.
 */
export function usernameFromClaims(claims: Record<string, unknown>): string | undefined {
  for (const claim of [claims.preferred_username, claims.email]) {
    if (typeof claim !== 'string') continue;
    const name = normaliseUsername(claim);
    if (usernamePattern.test(name)) return name;
  }
  return undefined;
}

/**
 * Local accounts of provider users (OpenID Connect or LDAP), linked by issuer
 * and subject. The first sign-in creates the user, or adopts the one SCIM
 * created for that name; later ones update its name and role from the
 * provider's current claims.
 */
export class OidcAccounts {
  constructor(
    private readonly database: Database,
    private readonly identity: IdentityService,
  ) {}

  /** Creates or updates the linked user to match `person`. Rejects a disabled user or a name another user has. */
  async provision(person: ProviderIdentity, transaction: Transaction): Promise<User> {
    const linkedId =
      (await this.linkedUserId(person, transaction)) ??
      (await this.adoptProvisioned(person, transaction));
    if (!linkedId) return this.createLinked(person, transaction);

    const user = await this.identity.users.findById(linkedId, transaction);
    if (!user) throw problems.unauthenticated('The linked account no longer exists.');
    if (user.disabled)
      throw problems.forbidden('This account is disabled on the appliance; ask an admin.');

    if (user.username !== person.username) await this.rename(user.id, person.username, transaction);
    // A changed role goes through updateUser, which also ends the user's other sessions.
    const current =
      user.role === person.role
        ? user
        : (await this.identity.updateUser(user.id, { role: person.role }, transaction)).after;

    await this.database.sequelize.query(
      'UPDATE oidc_links SET last_login_at = :now WHERE issuer = :issuer AND subject = :subject',
      {
        transaction,
        replacements: { ...person, now: new Date().toISOString() },
      },
    );
    return { ...current, username: person.username };
  }

  /** Returns the id of the account linked to this issuer and subject, if any. */
  async linkedUserId(
    person: Pick<ProviderIdentity, 'issuer' | 'subject'>,
    transaction?: Transaction,
  ): Promise<string | undefined> {
    const rows = await this.database.sequelize.query<{ user_id: string }>(
      'SELECT user_id FROM oidc_links WHERE issuer = :issuer AND subject = :subject',
      {
        type: QueryTypes.SELECT,
        transaction,
        replacements: { issuer: person.issuer, subject: person.subject },
      },
    );
    return rows[0]?.user_id;
  }

  /**
   * Links a user that SCIM created ahead of the first sign-in and that has the
   * same name and no link yet, so provisioning and sign-in meet in one account.
   * Local accounts are never adopted this way.
   */
  private async adoptProvisioned(
    person: ProviderIdentity,
    transaction: Transaction,
  ): Promise<string | undefined> {
    const rows = await this.database.sequelize.query<{ id: string }>(
      `SELECT users.id FROM users JOIN scim_users ON scim_users.user_id = users.id
       WHERE users.username = :username
         AND users.id NOT IN (SELECT user_id FROM oidc_links)`,
      { type: QueryTypes.SELECT, transaction, replacements: { username: person.username } },
    );
    const userId = rows[0]?.id;
    if (!userId) return undefined;

    const now = new Date().toISOString();
    await this.database.sequelize.query(
      `INSERT INTO oidc_links (issuer, subject, user_id, created_at, last_login_at)
       VALUES (:issuer, :subject, :userId, :now, :now)`,
      { transaction, replacements: { ...person, userId, now } },
    );
    return userId;
  }

  private async createLinked(person: ProviderIdentity, transaction: Transaction): Promise<User> {
    // The account signs in through the provider only: its local password is
    // random and never shown to anyone.
    await this.assertNameFree(person.username, transaction);
    const user = await this.identity.users.create(
      {
        username: person.username,
        password: crypto.randomBytes(32).toString('base64url'),
        role: person.role,
        mustChangePassword: false,
      },
      transaction,
    );
    const now = new Date().toISOString();
    await this.database.sequelize.query(
      `INSERT INTO oidc_links (issuer, subject, user_id, created_at, last_login_at)
       VALUES (:issuer, :subject, :userId, :now, :now)`,
      { transaction, replacements: { ...person, userId: user.id, now } },
    );
    return user;
  }

  /** Rejects a name another user has, so a provider user never takes over a local account by name. */
  private async assertNameFree(
    username: string,
    transaction: Transaction,
    exceptUserId = '',
  ): Promise<void> {
    const taken = await this.database.sequelize.query(
      'SELECT id FROM users WHERE username = :username AND id != :exceptUserId',
      { type: QueryTypes.SELECT, transaction, replacements: { username, exceptUserId } },
    );
    if (taken.length)
      throw problems.conflict(
        `The provider names this user "${username}", but another appliance user already has that name; rename one of them.`,
      );
  }

  private async rename(userId: string, username: string, transaction: Transaction): Promise<void> {
    await this.assertNameFree(username, transaction, userId);
    await this.database.sequelize.query(
      'UPDATE users SET username = :username, updated_at = :now WHERE id = :userId',
      { transaction, replacements: { username, userId, now: new Date().toISOString() } },
    );
  }
}
