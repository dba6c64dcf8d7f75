import crypto from 'node:crypto';

import type { Transaction } from 'sequelize';

import { problems } from '../../http/problem';
import { validate } from '../../http/validate';
import type { Database } from '../../platform/database';
import { checkedUsername } from '../oidc/accounts';
import { roleForGroups, type GroupRoleMapping } from '../oidc/role-mapping';
import type { Role } from '../permissions';
import type { IdentityService } from '../service';
import { scimError } from './errors';
import { patchGroup, patchUser, type GroupState } from './patch';
import {
  groupInput,
  userInput,
  type GroupInput,
  type PatchOperation,
  type UserInput,
} from './schemas';
import { ScimStore, type ScimUserRecord, type UserProfile } from './store';

/**
 * Role stored for a SCIM user in no mapped group. Such a user is always
 * disabled, so the role grants nothing until a mapped group replaces it.
 */
const placeholderRole: Role = 'auditor';

/** A change to a user's account that the audit note records, without personal data. */
export interface AccountChange {
  userId: string;
  role: Role;
  disabled: boolean;
}

/**
 * SCIM provisioning of users and groups. SCIM users sign in through OpenID
 * Connect or LDAP, because their local password is random and never shown.
 * Their role follows their SCIM groups through the group-to-role map. A user
 * who is inactive or in no mapped group is disabled, which ends their sessions.
 */
export class ScimProvisioning {
  readonly store: ScimStore;

  constructor(
    database: Database,
    private readonly identity: IdentityService,
    private readonly mapping: GroupRoleMapping,
  ) {
    this.store = new ScimStore(database);
  }

  async createUser(input: UserInput, transaction: Transaction): Promise<string> {
    const userName = checkedUsername(input.userName, 'userName');
    await this.assertNameFree(userName, undefined, transaction);

    const user = await this.identity.users.create(
      {
        username: userName,
        password: crypto.randomBytes(32).toString('base64url'),
        role: placeholderRole,
        mustChangePassword: false,
      },
      transaction,
    );
    await this.store.insertUser(
      user.id,
      { externalId: input.externalId, active: input.active ?? true, profile: profileOf(input) },
      transaction,
    );
    await this.syncAccounts([user.id], transaction);
    return user.id;
  }

  /** Replaces a user's attributes (PUT); returns the account change it caused, if any. */
  async replaceUser(
    id: string,
    input: UserInput,
    transaction: Transaction,
  ): Promise<AccountChange[]> {
    await this.requireUser(id, transaction);
    const userName = checkedUsername(input.userName, 'userName');
    await this.assertNameFree(userName, id, transaction);

    await this.store.updateUser(
      id,
      {
        userName,
        externalId: input.externalId,
        active: input.active ?? true,
        profile: profileOf(input),
      },
      transaction,
    );
    return this.syncAccounts([id], transaction);
  }

  async patchUser(
    id: string,
    operations: readonly PatchOperation[],
    transaction: Transaction,
  ): Promise<AccountChange[]> {
    const current = await this.requireUser(id, transaction);
    const patched = patchUser(writableUser(current), operations);
    return this.replaceUser(id, validate(userInput, patched, 'body'), transaction);
  }

  /** Deactivates a user (DELETE): the account stays, disabled, and its sessions end. */
  async deactivateUser(id: string, transaction: Transaction): Promise<AccountChange[]> {
    const current = await this.requireUser(id, transaction);
    return this.replaceUser(id, { ...writableUser(current), active: false }, transaction);
  }

  async createGroup(
    input: GroupInput,
    transaction: Transaction,
  ): Promise<{ id: string; changes: AccountChange[] }> {
    await this.assertGroupNameFree(input.displayName, undefined, transaction);
    const id = await this.store.insertGroup(input, transaction);
    const members = await this.checkedMembers(memberIdsOf(input), transaction);
    await this.store.setMembers(id, members, transaction);
    return { id, changes: await this.syncAccounts(members, transaction) };
  }

  async replaceGroup(
    id: string,
    input: GroupInput,
    transaction: Transaction,
  ): Promise<AccountChange[]> {
    return this.writeGroup(id, { ...input, members: memberIdsOf(input) }, transaction);
  }

  async patchGroup(
    id: string,
    operations: readonly PatchOperation[],
    transaction: Transaction,
  ): Promise<AccountChange[]> {
    const group = await this.requireGroup(id, transaction);
    const current: GroupState = {
      displayName: group.displayName,
      externalId: group.externalId,
      members: await this.store.membersOf(id, transaction),
    };
    const patched = patchGroup(current, operations);
    const checked = validate(
      groupInput,
      { ...patched, members: patched.members.map((value) => ({ value })) },
      'body',
    );
    return this.writeGroup(id, { ...checked, members: patched.members }, transaction);
  }

  async deleteGroup(id: string, transaction: Transaction): Promise<AccountChange[]> {
    await this.requireGroup(id, transaction);
    const members = await this.store.membersOf(id, transaction);
    await this.store.deleteGroup(id, transaction);
    return this.syncAccounts(members, transaction);
  }

  private async writeGroup(
    id: string,
    state: GroupState,
    transaction: Transaction,
  ): Promise<AccountChange[]> {
    await this.requireGroup(id, transaction);
    await this.assertGroupNameFree(state.displayName, id, transaction);
    const before = await this.store.membersOf(id, transaction);
    const members = await this.checkedMembers(state.members, transaction);

    await this.store.updateGroup(id, state, transaction);
    await this.store.setMembers(id, members, transaction);
    // A renamed group can map to another role, so every member is checked, not only the changed ones.
    return this.syncAccounts([...new Set([...before, ...members])], transaction);
  }

  /**
   * Sets each user's role from their groups and disables those who are
   * inactive or in no mapped group. Only a real change goes through
   * updateUser, which also ends the user's sessions.
   *
   * NOTE: an OpenID Connect or LDAP sign-in sets the role from that
   * provider's groups instead; the next SCIM change of the user sets it back.
   */
  private async syncAccounts(
    userIds: readonly string[],
    transaction: Transaction,
  ): Promise<AccountChange[]> {
    const changes: AccountChange[] = [];
    for (const userId of userIds) {
      const user = await this.requireUser(userId, transaction);
      const groups = await this.store.groupsOf(userId, transaction);
      const mapped = roleForGroups(
        groups.map((group) => group.displayName),
        this.mapping,
      );

      const role = mapped ?? user.role;
      const disabled = !user.active || !mapped;
      if (role === user.role && disabled === user.disabled) continue;

      await this.identity.updateUser(userId, { role, disabled }, transaction);
      changes.push({ userId, role, disabled });
    }
    return changes;
  }

  async requireUser(id: string, transaction?: Transaction): Promise<ScimUserRecord> {
    const user = await this.store.findUser(id, transaction);
    if (!user)
      throw problems.notFoundDetail(
        `No SCIM user has the id ${JSON.stringify(id)}; list users with GET /Users.`,
      );
    return user;
  }

  async requireGroup(id: string, transaction?: Transaction) {
    const group = await this.store.findGroup(id, transaction);
    if (!group)
      throw problems.notFoundDetail(
        `No SCIM group has the id ${JSON.stringify(id)}; list groups with GET /Groups.`,
      );
    return group;
  }

  /** Members must be SCIM users, so SCIM never changes the role of a local account. */
  private async checkedMembers(
    ids: readonly string[],
    transaction: Transaction,
  ): Promise<string[]> {
    const unique = [...new Set(ids)];
    const managed = await this.store.managedUserIds(unique, transaction);
    const unknown = unique.filter((id) => !managed.has(id));
    if (unknown.length)
      throw scimError(
        'invalidValue',
        `members: ${unknown.slice(0, 5).join(', ')} ${unknown.length === 1 ? 'is not a SCIM user id' : 'are not SCIM user ids'}; create the users with POST /Users first.`,
      );
    return unique;
  }

  private async assertNameFree(
    userName: string,
    exceptId: string | undefined,
    transaction: Transaction,
  ) {
    const holder = await this.store.userIdByName(userName, transaction);
    if (holder && holder !== exceptId)
      throw scimError(
        'uniqueness',
        `userName: "${userName}" is already taken by another appliance user; choose another userName.`,
        409,
      );
  }

  private async assertGroupNameFree(
    displayName: string,
    exceptId: string | undefined,
    transaction: Transaction,
  ) {
    const holder = await this.store.groupIdByName(displayName, transaction);
    if (holder && holder !== exceptId)
      throw scimError(
        'uniqueness',
        `displayName: a group named "${displayName}" already exists; choose another displayName.`,
        409,
      );
  }
}

function profileOf(input: UserInput): UserProfile {
  return {
    ...(input.displayName !== undefined ? { displayName: input.displayName } : {}),
    ...(input.name ? { name: pickName(input.name) } : {}),
    ...(input.emails
      ? {
          emails: input.emails.map((email) => ({
            value: email.value,
            ...(email.type !== undefined ? { type: email.type } : {}),
            ...(email.primary !== undefined ? { primary: email.primary } : {}),
          })),
        }
      : {}),
  };
}

function pickName(name: NonNullable<UserInput['name']>): UserProfile['name'] {
  return {
    ...(name.formatted !== undefined ? { formatted: name.formatted } : {}),
    ...(name.givenName !== undefined ? { givenName: name.givenName } : {}),
    ...(name.familyName !== undefined ? { familyName: name.familyName } : {}),
  };
}

/** Returns the attributes of a stored user that PUT and PATCH can change. */
function writableUser(user: ScimUserRecord): UserInput {
  return {
    userName: user.userName,
    ...(user.externalId !== undefined ? { externalId: user.externalId } : {}),
    active: user.active,
    ...user.profile,
  };
}

function memberIdsOf(input: GroupInput): string[] {
  return (input.members ?? []).map((member) => member.value);
}
