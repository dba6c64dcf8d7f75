import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';
import type { Permission } from '../permissions';

/** Every client secret starts with this, so a leaked secret is recognisable in logs and scanners. */
export const clientSecretPrefix = 'pbs_';

/** `pbs_` and 32 random bytes in base64url (43 characters). */
const clientSecretPattern = /^pbs_[A-Za-z0-9_-]{43}$/;

/** A client as admins see it: never the secret, only its last 4 characters. */
export interface OAuthClientSummary {
  clientId: string;
  name: string;
  ownerUserId: string;
  secretHint: string;
  permissions: Permission[];
  createdAt: string;
  expiresAt: string | null;
  disabledAt: string | null;
  secretRotatedAt: string | null;
  lastUsedAt: string | null;
}

interface ClientRow {
  id: string;
  owner_user_id: string;
  name: string;
  secret_hash: string;
  secret_last_four: string;
  permissions: string;
  created_at: string;
  expires_at: string | null;
  disabled_at: string | null;
  secret_rotated_at: string | null;
  last_used_at: string | null;
}

/**
 * OAuth clients of the client credentials grant. Each client acts for the
 * admin who registered it (its owner). The secret is shown once, and the
 * table stores only its SHA-256: a fast hash is safe here because the secret
 * has 256 random bits, unlike a password.
 */
export class OAuthClientStore {
  constructor(private readonly database: Database) {}

  /** Registers a client owned by `ownerUserId`; returns the secret, which is never readable again. */
  async create(
    ownerUserId: string,
    input: { name: string; permissions: Permission[]; expiresAt?: Date },
    transaction: Transaction,
  ): Promise<{ secret: string; summary: OAuthClientSummary }> {
    const id = crypto.randomUUID();
    const secret = newSecret();

    await this.database.sequelize.query(
      `INSERT INTO oauth_clients (id, owner_user_id, name, secret_hash, secret_last_four, permissions, created_at, expires_at)
       VALUES (:id, :ownerUserId, :name, :secretHash, :lastFour, :permissions, :now, :expiresAt)`,
      {
        transaction,
        replacements: {
          id,
          ownerUserId,
          name: input.name,
          secretHash: hashSecret(secret),
          lastFour: secret.slice(-4),
          permissions: JSON.stringify(input.permissions),
          now: new Date().toISOString(),
          expiresAt: input.expiresAt?.toISOString() ?? null,
        },
      },
    );
    const row = await this.row(id, transaction);
    return { secret, summary: present(row!) };
  }

  /** Lists every client, disabled ones included, newest first. */
  async list(): Promise<OAuthClientSummary[]> {
    const rows = await this.database.sequelize.query<ClientRow>(
      'SELECT * FROM oauth_clients ORDER BY created_at DESC, rowid DESC',
      { type: QueryTypes.SELECT },
    );
    return rows.map(present);
  }

  /** Replaces the secret of an enabled client; undefined when there is no such enabled client. */
  async rotateSecret(
    id: string,
    transaction: Transaction,
  ): Promise<{ secret: string; summary: OAuthClientSummary } | undefined> {
    const existing = await this.row(id, transaction);
    if (!existing || existing.disabled_at) return undefined;

    const secret = newSecret();
    await this.database.sequelize.query(
      `UPDATE oauth_clients SET secret_hash = :secretHash, secret_last_four = :lastFour, secret_rotated_at = :now
       WHERE id = :id`,
      {
        transaction,
        replacements: {
          id,
          secretHash: hashSecret(secret),
          lastFour: secret.slice(-4),
          now: new Date().toISOString(),
        },
      },
    );
    return { secret, summary: present((await this.row(id, transaction))!) };
  }

  /** Disables a client for good; its tokens stop working at once. Undefined when there is no such client. */
  async disable(id: string, transaction: Transaction): Promise<OAuthClientSummary | undefined> {
    const existing = await this.row(id, transaction);
    if (!existing) return undefined;

    if (!existing.disabled_at) {
      await this.database.sequelize.query(
        'UPDATE oauth_clients SET disabled_at = :now WHERE id = :id',
        { transaction, replacements: { id, now: new Date().toISOString() } },
      );
    }
    return present((await this.row(id, transaction))!);
  }

  /**
   * Checks a client id and secret; returns the client when it exists, the
   * secret matches, and it is neither disabled nor expired.
   */
  async authenticate(clientId: string, secret: string): Promise<OAuthClientSummary | undefined> {
    const row = await this.liveRow(clientId);
    if (!row || !clientSecretPattern.test(secret)) return undefined;

    const presented = Buffer.from(hashSecret(secret), 'hex');
    const stored = Buffer.from(row.secret_hash, 'hex');
    if (!crypto.timingSafeEqual(presented, stored)) return undefined;
    return present(row);
  }

  /** Returns the client when it exists and is neither disabled nor expired. */
  async findLive(clientId: string): Promise<OAuthClientSummary | undefined> {
    const row = await this.liveRow(clientId);
    return row ? present(row) : undefined;
  }

  /** Records a successful token request of the client. */
  async recordUse(clientId: string, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query(
      'UPDATE oauth_clients SET last_used_at = :now WHERE id = :id',
      { transaction, replacements: { id: clientId, now: new Date().toISOString() } },
    );
  }

  private async liveRow(clientId: string): Promise<ClientRow | undefined> {
    const row = await this.row(clientId);
    if (!row || row.disabled_at) return undefined;
    if (row.expires_at && Date.now() >= Date.parse(row.expires_at)) return undefined;
    return row;
  }

  private async row(id: string, transaction?: Transaction): Promise<ClientRow | undefined> {
    const [row] = await this.database.sequelize.query<ClientRow>(
      'SELECT * FROM oauth_clients WHERE id = :id',
      { type: QueryTypes.SELECT, transaction, replacements: { id } },
    );
    return row;
  }
}

function newSecret(): string {
  return clientSecretPrefix + crypto.randomBytes(32).toString('base64url');
}

function hashSecret(secret: string): string {
  return crypto.createHash('sha256').update(secret).digest('hex');
}

function isoOrNull(value: string | null): string | null {
  return value ? new Date(value).toISOString() : null;
}

function present(row: ClientRow): OAuthClientSummary {
  return {
    clientId: row.id,
    name: row.name,
    ownerUserId: row.owner_user_id,
    secretHint: `${clientSecretPrefix}…${row.secret_last_four}`,
    permissions: JSON.parse(row.permissions) as Permission[],
    createdAt: new Date(row.created_at).toISOString(),
    expiresAt: isoOrNull(row.expires_at),
    disabledAt: isoOrNull(row.disabled_at),
    secretRotatedAt: isoOrNull(row.secret_rotated_at),
    lastUsedAt: isoOrNull(row.last_used_at),
  };
}
