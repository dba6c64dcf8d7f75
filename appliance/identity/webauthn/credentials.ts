import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';

/** A registered security key as its owner sees it, without the public key. */
export interface CredentialSummary {
  id: string;
  name: string;
  deviceType: string;
  backedUp: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}

/** A stored credential with what verification needs. */
export interface StoredCredential extends CredentialSummary {
  userId: string;
  /** Base64url credential id chosen by the authenticator. */
  credentialId: string;
  publicKey: Uint8Array;
  counter: number;
  transports: string[];
}

interface CredentialRow {
  id: string;
  user_id: string;
  credential_id: string;
  public_key: Buffer;
  counter: number;
  transports: string;
  device_type: string;
  backed_up: number;
  name: string;
  created_at: string;
  last_used_at: string | null;
}

/** WebAuthn credentials in SQLite: public keys and signature counters only. */
export class WebAuthnCredentials {
  constructor(private readonly database: Database) {}

  async add(
    input: {
      userId: string;
      name: string;
      credentialId: string;
      publicKey: Uint8Array;
      counter: number;
      transports: string[];
      deviceType: string;
      backedUp: boolean;
    },
    transaction: Transaction,
  ): Promise<CredentialSummary> {
    const existing = await this.database.sequelize.query(
      'SELECT id FROM webauthn_credentials WHERE credential_id = :credentialId',
      { type: QueryTypes.SELECT, transaction, replacements: { credentialId: input.credentialId } },
    );
    if (existing.length)
      throw new CredentialConflictError('This security key is already registered.');

    const id = crypto.randomUUID();
    const createdAt = new Date().toISOString();
    await this.database.sequelize.query(
      `INSERT INTO webauthn_credentials
         (id, user_id, credential_id, public_key, counter, transports, device_type, backed_up, name, created_at)
       VALUES (:id, :userId, :credentialId, :publicKey, :counter, :transports, :deviceType, :backedUp, :name, :createdAt)`,
      {
        transaction,
        replacements: {
          id,
          userId: input.userId,
          credentialId: input.credentialId,
          publicKey: Buffer.from(input.publicKey),
          counter: input.counter,
          transports: JSON.stringify(input.transports),
          deviceType: input.deviceType,
          backedUp: input.backedUp ? 1 : 0,
          name: input.name,
          createdAt,
        },
      },
    );
    return {
      id,
      name: input.name,
      deviceType: input.deviceType,
      backedUp: input.backedUp,
      createdAt,
      lastUsedAt: null,
    };
  }

  async listFor(userId: string, transaction?: Transaction): Promise<StoredCredential[]> {
    const rows = await this.database.sequelize.query<CredentialRow>(
      'SELECT * FROM webauthn_credentials WHERE user_id = :userId ORDER BY created_at',
      { type: QueryTypes.SELECT, transaction, replacements: { userId } },
    );
    return rows.map(toCredential);
  }

  async countFor(userId: string): Promise<number> {
    const [row] = await this.database.sequelize.query<{ n: number }>(
      'SELECT COUNT(*) AS n FROM webauthn_credentials WHERE user_id = :userId',
      { type: QueryTypes.SELECT, replacements: { userId } },
    );
    return row.n;
  }

  /** Finds a credential by the authenticator's id, only among `userId`'s credentials. */
  async findOwned(userId: string, credentialId: string): Promise<StoredCredential | undefined> {
    const rows = await this.database.sequelize.query<CredentialRow>(
      'SELECT * FROM webauthn_credentials WHERE user_id = :userId AND credential_id = :credentialId',
      { type: QueryTypes.SELECT, replacements: { userId, credentialId } },
    );
    return rows.length ? toCredential(rows[0]) : undefined;
  }

  /**
   * Stores the counter of a verified assertion. The update applies only while
   * the stored counter is still the one verified against, so of two
   * concurrent uses of one assertion at most one succeeds.
   */
  async recordUse(
    credential: StoredCredential,
    newCounter: number,
    transaction: Transaction,
  ): Promise<boolean> {
    const [, affected] = await this.database.sequelize.query(
      `UPDATE webauthn_credentials SET counter = :newCounter, last_used_at = :now
       WHERE id = :id AND counter = :oldCounter`,
      {
        transaction,
        type: QueryTypes.UPDATE,
        replacements: {
          newCounter,
          now: new Date().toISOString(),
          id: credential.id,
          oldCounter: credential.counter,
        },
      },
    );
    return affected > 0;
  }

  /** Renames a credential of the user; returns false when the user has none with that id. */
  async rename(userId: string, id: string, name: string, transaction: Transaction) {
    const [, affected] = await this.database.sequelize.query(
      'UPDATE webauthn_credentials SET name = :name WHERE id = :id AND user_id = :userId',
      { transaction, type: QueryTypes.UPDATE, replacements: { name, id, userId } },
    );
    return affected > 0;
  }

  /** Deletes a credential of the user; returns false when the user has none with that id. */
  async remove(userId: string, id: string, transaction: Transaction): Promise<boolean> {
    const found = await this.database.sequelize.query(
      'SELECT id FROM webauthn_credentials WHERE id = :id AND user_id = :userId',
      { type: QueryTypes.SELECT, transaction, replacements: { id, userId } },
    );
    if (!found.length) return false;
    await this.database.sequelize.query(
      'DELETE FROM webauthn_credentials WHERE id = :id AND user_id = :userId',
      { transaction, replacements: { id, userId } },
    );
    return true;
  }
}

/** Raised when a credential id is registered already, to this or another user. */
export class CredentialConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialConflictError';
  }
}

export function presentCredential(credential: CredentialSummary): CredentialSummary {
  return {
    id: credential.id,
    name: credential.name,
    deviceType: credential.deviceType,
    backedUp: credential.backedUp,
    createdAt: credential.createdAt,
    lastUsedAt: credential.lastUsedAt,
  };
}

function toCredential(row: CredentialRow): StoredCredential {
  return {
    id: row.id,
    userId: row.user_id,
    credentialId: row.credential_id,
    publicKey: new Uint8Array(row.public_key),
    counter: row.counter,
    transports: JSON.parse(row.transports) as string[],
    deviceType: row.device_type,
    backedUp: Boolean(row.backed_up),
    name: row.name,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
  };
}
