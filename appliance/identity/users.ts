import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../platform/database';
import { ProblemError, problems } from '../http/problem';
import { hashPassword } from './passwords';
import type { Role } from './permissions';

export interface User {
  id: string;
  username: string;
  role: Role;
  mustChangePassword: boolean;
  disabled: boolean;
  /** Address for account recovery mail, normalised like the username; null when none is set. */
  email: string | null;
  createdAt: string;
}

interface UserRow {
  id: string;
  username: string;
  password_hash: string;
  role: Role;
  must_change_password: number;
  disabled: number;
  email: string | null;
  created_at: string;
}

/** Normalises a user name for storage and comparison: NFKC, trimmed, lower case. */
export function normaliseUsername(username: string): string {
  return username.normalize('NFKC').trim().toLowerCase();
}

/** Normalises an email address for storage and comparison: NFKC, trimmed, lower case. */
export function normaliseEmail(email: string): string {
  return email.normalize('NFKC').trim().toLowerCase();
}

/** User accounts in SQLite; passwords are stored only as argon2id hashes. */
export class UserDirectory {
  constructor(private readonly database: Database) {}

  async count(): Promise<number> {
    const [row] = await this.database.sequelize.query<{ n: number }>(
      'SELECT COUNT(*) AS n FROM users',
      {
        type: QueryTypes.SELECT,
      },
    );
    return row.n;
  }

  async findWithHash(username: string): Promise<{ user: User; passwordHash: string } | undefined> {
    const rows = await this.database.sequelize.query<UserRow>(
      'SELECT * FROM users WHERE username = :username',
      {
        type: QueryTypes.SELECT,
        replacements: { username: normaliseUsername(username) },
      },
    );
    return rows.length ? { user: toUser(rows[0]), passwordHash: rows[0].password_hash } : undefined;
  }

  async findByEmail(email: string): Promise<User | undefined> {
    const rows = await this.database.sequelize.query<UserRow>(
      'SELECT * FROM users WHERE email = :email',
      {
        type: QueryTypes.SELECT,
        replacements: { email: normaliseEmail(email) },
      },
    );
    return rows.length ? toUser(rows[0]) : undefined;
  }

  async findById(id: string, transaction?: Transaction): Promise<User | undefined> {
    const rows = await this.database.sequelize.query<UserRow>(
      'SELECT * FROM users WHERE id = :id',
      {
        type: QueryTypes.SELECT,
        transaction,
        replacements: { id },
      },
    );
    return rows.length ? toUser(rows[0]) : undefined;
  }

  async passwordHashOf(id: string, transaction?: Transaction): Promise<string> {
    const rows = await this.database.sequelize.query<UserRow>(
      'SELECT password_hash FROM users WHERE id = :id',
      {
        type: QueryTypes.SELECT,
        transaction,
        replacements: { id },
      },
    );
    if (!rows.length) throw problems.notFound(`User ${id}`);
    return rows[0].password_hash;
  }

  async list(transaction?: Transaction): Promise<User[]> {
    const rows = await this.database.sequelize.query<UserRow>(
      'SELECT * FROM users ORDER BY username',
      {
        type: QueryTypes.SELECT,
        transaction,
      },
    );
    return rows.map(toUser);
  }

  /** Creates a user; the name and the email address, when given, must be unused after normalisation. */
  async create(
    input: {
      username: string;
      password: string;
      role: Role;
      mustChangePassword: boolean;
      email?: string;
    },
    transaction: Transaction,
  ): Promise<User> {
    const username = normaliseUsername(input.username);
    const existing = await this.database.sequelize.query(
      'SELECT id FROM users WHERE username = :username',
      {
        type: QueryTypes.SELECT,
        transaction,
        replacements: { username },
      },
    );
    if (existing.length)
      throw problems.conflict(
        `A user named "${username}" already exists; choose another username.`,
      );

    const email = input.email === undefined ? null : normaliseEmail(input.email);
    if (email !== null) await this.assertEmailFree(email, undefined, transaction);

    const now = new Date().toISOString();
    const id = crypto.randomUUID();
    await this.database.sequelize.query(
      `INSERT INTO users (id, username, password_hash, role, must_change_password, disabled, email, created_at, updated_at)
       VALUES (:id, :username, :hash, :role, :mustChange, 0, :email, :now, :now)`,
      {
        transaction,
        replacements: {
          id,
          username,
          hash: await hashPassword(input.password),
          role: input.role,
          mustChange: input.mustChangePassword ? 1 : 0,
          email,
          now,
        },
      },
    );
    return {
      id,
      username,
      role: input.role,
      mustChangePassword: input.mustChangePassword,
      disabled: false,
      email,
      createdAt: now,
    };
  }

  /** Sets or, with null, removes the user's email address and returns the updated account. */
  async setEmail(id: string, email: string | null, transaction: Transaction): Promise<User> {
    const normalised = email === null ? null : normaliseEmail(email);
    if (normalised !== null) await this.assertEmailFree(normalised, id, transaction);

    await this.database.sequelize.query(
      'UPDATE users SET email = :email, updated_at = :now WHERE id = :id',
      {
        transaction,
        replacements: { id, email: normalised, now: new Date().toISOString() },
      },
    );
    // Setting the address, even to the same value, ends any recovery link mailed before.
    await this.database.sequelize.query('DELETE FROM account_recovery_tokens WHERE user_id = :id', {
      transaction,
      replacements: { id },
    });
    const updated = await this.findById(id, transaction);
    if (!updated) throw problems.notFound(`User ${id}`);
    return updated;
  }

  /** Throws 409 naming the email field when another user than `exceptId` has this normalised address. */
  private async assertEmailFree(
    email: string,
    exceptId: string | undefined,
    transaction: Transaction,
  ): Promise<void> {
    const rows = await this.database.sequelize.query<{ id: string }>(
      'SELECT id FROM users WHERE email = :email',
      { type: QueryTypes.SELECT, transaction, replacements: { email } },
    );
    if (rows.some((row) => row.id !== exceptId))
      throw new ProblemError(
        409,
        'conflict',
        'Conflict',
        'email: another user already has this address; use a different one.',
        [{ field: 'email', message: 'is already used by another user' }],
      );
  }

  /** Sets the role and/or disabled flag of a user and returns the updated account. */
  async update(
    id: string,
    change: { role?: Role; disabled?: boolean },
    transaction: Transaction,
  ): Promise<User> {
    // NULL keeps the stored value (COALESCE), so one statement serves any subset of fields.
    let disabled: number | null = null;
    if (change.disabled !== undefined) disabled = change.disabled ? 1 : 0;

    await this.database.sequelize.query(
      `UPDATE users SET role = COALESCE(:role, role), disabled = COALESCE(:disabled, disabled),
       updated_at = :now WHERE id = :id`,
      {
        transaction,
        replacements: {
          id,
          role: change.role ?? null,
          disabled,
          now: new Date().toISOString(),
        },
      },
    );
    const updated = await this.findById(id, transaction);
    if (!updated) throw problems.notFound(`User ${id}`);
    return updated;
  }

  async setPassword(id: string, password: string, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query(
      `UPDATE users SET password_hash = :hash, must_change_password = 0, updated_at = :now WHERE id = :id`,
      {
        transaction,
        replacements: { id, hash: await hashPassword(password), now: new Date().toISOString() },
      },
    );
  }
}

function toUser(row: UserRow): User {
  return {
    id: row.id,
    username: row.username,
    role: row.role,
    mustChangePassword: Boolean(row.must_change_password),
    disabled: Boolean(row.disabled),
    email: row.email ?? null,
    createdAt: row.created_at,
  };
}
