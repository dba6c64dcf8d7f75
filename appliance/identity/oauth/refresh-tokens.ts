import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';
import type { Permission } from '../permissions';

/** Every refresh token starts with this, so a leaked token is recognisable in logs and scanners. */
export const refreshTokenPrefix = 'pbr_';

/** `pbr_` and 32 random bytes in base64url (43 characters). */
const refreshTokenPattern = /^pbr_[A-Za-z0-9_-]{43}$/;

/**
 * A token family: the grant a signed-in user made for one script or CLI.
 * Its id is the `client_id` of the access tokens it issues.
 */
export interface TokenFamily {
  id: string;
  userId: string;
  name: string;
  permissions: Permission[];
  createdAt: string;
  expiresAt: string;
  revokedAt: string | null;
}

/** A presented refresh token found by its hash, with the family it belongs to. */
export interface PresentedRefreshToken {
  tokenHash: string;
  family: TokenFamily;
  used: boolean;
  expired: boolean;
}

interface FamilyRow {
  id: string;
  user_id: string;
  name: string;
  permissions: string;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
}

/** Thrown inside a rotation when the token was used since it was looked up, so the transaction rolls back. */
export class RefreshTokenReused extends Error {
  constructor(readonly familyId: string) {
    super(`refresh token of family ${familyId} was already used`);
    this.name = 'RefreshTokenReused';
  }
}

/**
 * Refresh tokens with rotation and reuse detection. Each use of a refresh
 * token marks it used and issues a new one in the same family. A used token
 * presented again means that a copy leaked, so the caller revokes the whole
 * family. Only the SHA-256 of each token is stored.
 */
export class RefreshTokenStore {
  constructor(
    private readonly database: Database,
    private readonly lifetimes: { tokenSeconds: number; familySeconds: number },
  ) {}

  /** Creates a family for `userId` and its first refresh token. */
  async createFamily(
    input: { id: string; userId: string; name: string; permissions: Permission[] },
    transaction: Transaction,
  ): Promise<{ refreshToken: string; family: TokenFamily }> {
    const now = new Date();
    const expiresAt = new Date(now.getTime() + this.lifetimes.familySeconds * 1000);

    await this.database.sequelize.query(
      `INSERT INTO oauth_token_families (id, user_id, name, permissions, created_at, expires_at)
       VALUES (:id, :userId, :name, :permissions, :now, :expiresAt)`,
      {
        transaction,
        replacements: {
          ...input,
          permissions: JSON.stringify(input.permissions),
          now: now.toISOString(),
          expiresAt: expiresAt.toISOString(),
        },
      },
    );
    const refreshToken = await this.insertToken(input.id, expiresAt, transaction);
    return { refreshToken, family: (await this.family(input.id, transaction))! };
  }

  /** Looks up a presented refresh token; undefined when it is malformed or unknown. */
  async find(presented: string): Promise<PresentedRefreshToken | undefined> {
    if (!refreshTokenPattern.test(presented)) return undefined;

    const tokenHash = hashToken(presented);
    const [row] = await this.database.sequelize.query<{
      family_id: string;
      expires_at: string;
      used_at: string | null;
    }>(
      'SELECT family_id, expires_at, used_at FROM oauth_refresh_tokens WHERE token_hash = :tokenHash',
      {
        type: QueryTypes.SELECT,
        replacements: { tokenHash },
      },
    );
    if (!row) return undefined;

    const family = await this.family(row.family_id);
    if (!family) return undefined;
    return {
      tokenHash,
      family,
      used: row.used_at !== null,
      expired: Date.now() >= Date.parse(row.expires_at),
    };
  }

  /**
   * Marks the presented token used and issues its successor. Throws
   * RefreshTokenReused when another request used the token first.
   */
  async rotate(presented: PresentedRefreshToken, transaction: Transaction): Promise<string> {
    const [, changes] = await this.database.sequelize.query(
      'UPDATE oauth_refresh_tokens SET used_at = :now WHERE token_hash = :tokenHash AND used_at IS NULL',
      {
        type: QueryTypes.UPDATE,
        transaction,
        replacements: { tokenHash: presented.tokenHash, now: new Date().toISOString() },
      },
    );
    if (changes !== 1) throw new RefreshTokenReused(presented.family.id);

    // A successor never outlives its family.
    const tokenExpiry = Date.now() + this.lifetimes.tokenSeconds * 1000;
    const expiresAt = new Date(Math.min(tokenExpiry, Date.parse(presented.family.expiresAt)));
    return this.insertToken(presented.family.id, expiresAt, transaction);
  }

  /** Revokes a family, so none of its refresh or access tokens works any more. */
  async revokeFamily(familyId: string, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query(
      'UPDATE oauth_token_families SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL',
      { transaction, replacements: { id: familyId, now: new Date().toISOString() } },
    );
  }

  /** Returns the family when it exists, is not revoked and has not expired. */
  async findLiveFamily(id: string): Promise<TokenFamily | undefined> {
    const family = await this.family(id);
    if (!family || family.revokedAt || Date.now() >= Date.parse(family.expiresAt)) return undefined;
    return family;
  }

  private async insertToken(
    familyId: string,
    expiresAt: Date,
    transaction: Transaction,
  ): Promise<string> {
    const refreshToken = refreshTokenPrefix + crypto.randomBytes(32).toString('base64url');
    await this.database.sequelize.query(
      `INSERT INTO oauth_refresh_tokens (token_hash, family_id, created_at, expires_at)
       VALUES (:tokenHash, :familyId, :now, :expiresAt)`,
      {
        transaction,
        replacements: {
          tokenHash: hashToken(refreshToken),
          familyId,
          now: new Date().toISOString(),
          expiresAt: expiresAt.toISOString(),
        },
      },
    );
    return refreshToken;
  }

  private async family(id: string, transaction?: Transaction): Promise<TokenFamily | undefined> {
    const [row] = await this.database.sequelize.query<FamilyRow>(
      'SELECT * FROM oauth_token_families WHERE id = :id',
      { type: QueryTypes.SELECT, transaction, replacements: { id } },
    );
    if (!row) return undefined;
    return {
      id: row.id,
      userId: row.user_id,
      name: row.name,
      permissions: JSON.parse(row.permissions) as Permission[],
      createdAt: new Date(row.created_at).toISOString(),
      expiresAt: new Date(row.expires_at).toISOString(),
      revokedAt: row.revoked_at ? new Date(row.revoked_at).toISOString() : null,
    };
  }
}

function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}
