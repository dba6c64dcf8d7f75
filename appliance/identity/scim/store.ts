import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';
import type { Role } from '../permissions';

/** The SCIM attributes of a user that the users table does not keep. */
export interface UserProfile {
  displayName?: string;
  name?: { formatted?: string; givenName?: string; familyName?: string };
  emails?: { value: string; type?: string; primary?: boolean }[];
}

/** A SCIM-managed user as stored: the account row joined with its SCIM attributes. */
export interface ScimUserRecord {
  id: string;
  userName: string;
  role: Role;
  disabled: boolean;
  externalId?: string;
  active: boolean;
  profile: UserProfile;
  created: string;
  lastModified: string;
}

export interface ScimGroupRecord {
  id: string;
  displayName: string;
  externalId?: string;
  created: string;
  lastModified: string;
}

interface UserRow {
  id: string;
  username: string;
  role: Role;
  disabled: number;
  external_id: string | null;
  active: number;
  profile: string;
  created_at: string;
  updated_at: string;
}

interface GroupRow {
  id: string;
  display_name: string;
  external_id: string | null;
  created_at: string;
  updated_at: string;
}

const userSelect = `SELECT users.id, users.username, users.role, users.disabled, scim_users.external_id,
  scim_users.active, scim_users.profile, scim_users.created_at, scim_users.updated_at
  FROM scim_users JOIN users ON users.id = scim_users.user_id`;

/** A page of a list and the number of matches before paging. */
export interface Page<T> {
  total: number;
  items: T[];
}

/** SQL for the SCIM tables (scim_users, scim_groups, scim_group_members). */
export class ScimStore {
  constructor(private readonly database: Database) {}

  async findUser(id: string, transaction?: Transaction): Promise<ScimUserRecord | undefined> {
    const rows = await this.select<UserRow>(
      `${userSelect} WHERE users.id = :id`,
      { id },
      transaction,
    );
    return rows.length ? toUser(rows[0]) : undefined;
  }

  /** Lists users, optionally where one column equals a value; `offset` counts from 0. */
  async listUsers(
    where: { column: 'username' | 'external_id'; value: string } | undefined,
    offset: number,
    limit: number,
  ): Promise<Page<ScimUserRecord>> {
    const column = where?.column === 'external_id' ? 'scim_users.external_id' : 'users.username';
    const condition = where ? `WHERE ${column} = :value` : '';
    return this.page<UserRow, ScimUserRecord>(
      `${userSelect} ${condition}`,
      'FROM scim_users JOIN users ON users.id = scim_users.user_id',
      condition,
      { value: where?.value ?? '' },
      offset,
      limit,
      'scim_users.created_at, users.id',
      toUser,
    );
  }

  async insertUser(
    userId: string,
    attributes: { externalId?: string; active: boolean; profile: UserProfile },
    transaction: Transaction,
  ): Promise<void> {
    const now = new Date().toISOString();
    await this.database.sequelize.query(
      `INSERT INTO scim_users (user_id, external_id, active, profile, created_at, updated_at)
       VALUES (:userId, :externalId, :active, :profile, :now, :now)`,
      {
        transaction,
        replacements: {
          userId,
          externalId: attributes.externalId ?? null,
          active: attributes.active ? 1 : 0,
          profile: JSON.stringify(attributes.profile),
          now,
        },
      },
    );
  }

  /** Replaces the SCIM attributes of a user and, when it changed, the account's name. */
  async updateUser(
    userId: string,
    attributes: { userName: string; externalId?: string; active: boolean; profile: UserProfile },
    transaction: Transaction,
  ): Promise<void> {
    const now = new Date().toISOString();
    await this.database.sequelize.query(
      `UPDATE scim_users SET external_id = :externalId, active = :active, profile = :profile,
       updated_at = :now WHERE user_id = :userId`,
      {
        transaction,
        replacements: {
          userId,
          externalId: attributes.externalId ?? null,
          active: attributes.active ? 1 : 0,
          profile: JSON.stringify(attributes.profile),
          now,
        },
      },
    );
    await this.database.sequelize.query(
      'UPDATE users SET username = :userName, updated_at = :now WHERE id = :userId AND username != :userName',
      { transaction, replacements: { userId, userName: attributes.userName, now } },
    );
  }

  /** Returns the id of the user with this name, if any, whether or not SCIM manages it. */
  async userIdByName(username: string, transaction: Transaction): Promise<string | undefined> {
    const rows = await this.select<{ id: string }>(
      'SELECT id FROM users WHERE username = :username',
      { username },
      transaction,
    );
    return rows[0]?.id;
  }

  async findGroup(id: string, transaction?: Transaction): Promise<ScimGroupRecord | undefined> {
    const rows = await this.select<GroupRow>(
      'SELECT * FROM scim_groups WHERE id = :id',
      { id },
      transaction,
    );
    return rows.length ? toGroup(rows[0]) : undefined;
  }

  async groupIdByName(displayName: string, transaction: Transaction): Promise<string | undefined> {
    const rows = await this.select<{ id: string }>(
      'SELECT id FROM scim_groups WHERE display_name = :displayName',
      { displayName },
      transaction,
    );
    return rows[0]?.id;
  }

  async listGroups(
    where: { column: 'display_name' | 'external_id'; value: string } | undefined,
    offset: number,
    limit: number,
  ): Promise<Page<ScimGroupRecord>> {
    const column = where?.column === 'external_id' ? 'external_id' : 'display_name';
    const condition = where ? `WHERE ${column} = :value` : '';
    return this.page<GroupRow, ScimGroupRecord>(
      `SELECT * FROM scim_groups ${condition}`,
      'FROM scim_groups',
      condition,
      { value: where?.value ?? '' },
      offset,
      limit,
      'created_at, id',
      toGroup,
    );
  }

  async insertGroup(
    attributes: { displayName: string; externalId?: string },
    transaction: Transaction,
  ): Promise<string> {
    const id = crypto.randomUUID();
    const now = new Date().toISOString();
    await this.database.sequelize.query(
      `INSERT INTO scim_groups (id, display_name, external_id, created_at, updated_at)
       VALUES (:id, :displayName, :externalId, :now, :now)`,
      {
        transaction,
        replacements: {
          id,
          displayName: attributes.displayName,
          externalId: attributes.externalId ?? null,
          now,
        },
      },
    );
    return id;
  }

  async updateGroup(
    id: string,
    attributes: { displayName: string; externalId?: string },
    transaction: Transaction,
  ): Promise<void> {
    await this.database.sequelize.query(
      `UPDATE scim_groups SET display_name = :displayName, external_id = :externalId,
       updated_at = :now WHERE id = :id`,
      {
        transaction,
        replacements: {
          id,
          displayName: attributes.displayName,
          externalId: attributes.externalId ?? null,
          now: new Date().toISOString(),
        },
      },
    );
  }

  async deleteGroup(id: string, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query('DELETE FROM scim_group_members WHERE group_id = :id', {
      transaction,
      replacements: { id },
    });
    await this.database.sequelize.query('DELETE FROM scim_groups WHERE id = :id', {
      transaction,
      replacements: { id },
    });
  }

  /** Returns the member user ids of a group. */
  async membersOf(groupId: string, transaction?: Transaction): Promise<string[]> {
    const rows = await this.select<{ user_id: string }>(
      'SELECT user_id FROM scim_group_members WHERE group_id = :groupId ORDER BY user_id',
      { groupId },
      transaction,
    );
    return rows.map((row) => row.user_id);
  }

  /** Returns the members of a group with their names, for the group's `members` attribute. */
  async namedMembersOf(groupId: string): Promise<{ id: string; userName: string }[]> {
    return this.select<{ id: string; userName: string }>(
      `SELECT users.id, users.username AS userName FROM scim_group_members
       JOIN users ON users.id = scim_group_members.user_id
       WHERE scim_group_members.group_id = :groupId ORDER BY users.username`,
      { groupId },
    );
  }

  /** Returns the groups a user is a member of. */
  async groupsOf(
    userId: string,
    transaction?: Transaction,
  ): Promise<{ id: string; displayName: string }[]> {
    return this.select<{ id: string; displayName: string }>(
      `SELECT scim_groups.id, scim_groups.display_name AS displayName FROM scim_group_members
       JOIN scim_groups ON scim_groups.id = scim_group_members.group_id
       WHERE scim_group_members.user_id = :userId ORDER BY scim_groups.display_name`,
      { userId },
      transaction,
    );
  }

  async setMembers(
    groupId: string,
    userIds: readonly string[],
    transaction: Transaction,
  ): Promise<void> {
    await this.database.sequelize.query(
      'DELETE FROM scim_group_members WHERE group_id = :groupId',
      {
        transaction,
        replacements: { groupId },
      },
    );
    for (const userId of userIds) {
      await this.database.sequelize.query(
        'INSERT INTO scim_group_members (group_id, user_id) VALUES (:groupId, :userId)',
        { transaction, replacements: { groupId, userId } },
      );
    }
  }

  /** Returns which of `userIds` are SCIM-managed users. */
  async managedUserIds(userIds: readonly string[], transaction: Transaction): Promise<Set<string>> {
    if (!userIds.length) return new Set();
    const rows = await this.select<{ user_id: string }>(
      'SELECT user_id FROM scim_users WHERE user_id IN (:userIds)',
      { userIds: [...userIds] },
      transaction,
    );
    return new Set(rows.map((row) => row.user_id));
  }

  private select<T extends object>(
    sql: string,
    replacements: Record<string, unknown>,
    transaction?: Transaction,
  ): Promise<T[]> {
    return this.database.sequelize.query<T>(sql, {
      type: QueryTypes.SELECT,
      transaction,
      replacements,
    });
  }

  private async page<Row extends object, Item>(
    selectSql: string,
    fromSql: string,
    condition: string,
    replacements: Record<string, unknown>,
    offset: number,
    limit: number,
    orderBy: string,
    toItem: (row: Row) => Item,
  ): Promise<Page<Item>> {
    const [{ total }] = await this.select<{ total: number }>(
      `SELECT COUNT(*) AS total ${fromSql} ${condition}`,
      replacements,
    );
    const rows = limit
      ? await this.select<Row>(`${selectSql} ORDER BY ${orderBy} LIMIT :limit OFFSET :offset`, {
          ...replacements,
          limit,
          offset,
        })
      : [];
    return { total, items: rows.map(toItem) };
  }
}

function toUser(row: UserRow): ScimUserRecord {
  return {
    id: row.id,
    userName: row.username,
    role: row.role,
    disabled: Boolean(row.disabled),
    externalId: row.external_id ?? undefined,
    active: Boolean(row.active),
    profile: JSON.parse(row.profile) as UserProfile,
    created: new Date(row.created_at).toISOString(),
    lastModified: new Date(row.updated_at).toISOString(),
  };
}

function toGroup(row: GroupRow): ScimGroupRecord {
  return {
    id: row.id,
    displayName: row.display_name,
    externalId: row.external_id ?? undefined,
    created: new Date(row.created_at).toISOString(),
    lastModified: new Date(row.updated_at).toISOString(),
  };
}
