import { scimError } from './errors';
import type { GroupInput, PatchOperation, UserInput } from './schemas';

type Op = 'add' | 'replace' | 'remove';

/** Reads `op` case-insensitively, because some clients send `Replace` or `Add`. */
function opOf(operation: PatchOperation, index: number): Op {
  const op = operation.op.toLowerCase();
  if (op === 'add' || op === 'replace' || op === 'remove') return op;
  throw scimError(
    'invalidValue',
    `Operations.${index}.op: ${JSON.stringify(operation.op)} is not an operation; use add, replace or remove.`,
  );
}

/** User attributes a PATCH path may name, in lower case, with the attribute they set. */
const userPaths: Record<string, string[]> = {
  username: ['userName'],
  externalid: ['externalId'],
  active: ['active'],
  displayname: ['displayName'],
  name: ['name'],
  'name.formatted': ['name', 'formatted'],
  'name.givenname': ['name', 'givenName'],
  'name.familyname': ['name', 'familyName'],
  emails: ['emails'],
};

/**
 * Applies PATCH operations (RFC 7644 section 3.5.2) to a user and returns the
 * new attributes, which the caller validates like a PUT body. Supported paths
 * are the attributes in `userPaths`; an operation without a path takes an
 * object of those attributes.
 */
export function patchUser(current: UserInput, operations: readonly PatchOperation[]): UserInput {
  const next = structuredClone(current) as Record<string, unknown>;

  operations.forEach((operation, index) => {
    const op = opOf(operation, index);
    if (operation.path === undefined) {
      if (op === 'remove')
        throw scimError('noTarget', `Operations.${index}.path: remove needs a path.`);
      for (const [key, value] of Object.entries(objectValue(operation.value, index)))
        if (key !== 'schemas') setUserPath(next, key, userValue(key, value), index);
      return;
    }

    if (op === 'remove') {
      const target = userTarget(operation.path, index);
      if (target[0] === 'userName' || target[0] === 'active')
        throw scimError(
          'mutability',
          `Operations.${index}.path: ${operation.path} is required and cannot be removed.`,
        );
      removeAt(next, target);
      return;
    }
    setUserPath(next, operation.path, userValue(operation.path, operation.value), index);
  });
  return next as UserInput;
}

function setUserPath(user: Record<string, unknown>, path: string, value: unknown, index: number) {
  const target = userTarget(path, index);
  if (target.length === 1 && target[0] === 'name' && typeof value === 'object' && value !== null) {
    user.name = { ...(user.name as object | undefined), ...value };
    return;
  }
  if (target.length === 2) {
    user[target[0]] = { ...(user[target[0]] as object | undefined), [target[1]]: value };
    return;
  }
  user[target[0]] = value;
}

function userTarget(path: string, index: number): string[] {
  const target = userPaths[path.toLowerCase()];
  if (!target)
    throw scimError(
      'invalidPath',
      `Operations.${index}.path: ${JSON.stringify(path)} is not supported; use one of userName, externalId, active, displayName, name, name.givenName, name.familyName, name.formatted, emails.`,
    );
  return target;
}

/** Accepts `"True"` and `"False"` for active, as some clients send booleans as strings. */
function userValue(path: string, value: unknown): unknown {
  if (path.toLowerCase() === 'active' && typeof value === 'string') {
    if (value.toLowerCase() === 'true') return true;
    if (value.toLowerCase() === 'false') return false;
  }
  return value;
}

function removeAt(object: Record<string, unknown>, target: string[]) {
  if (target.length === 1) {
    delete object[target[0]];
    return;
  }
  const parent = object[target[0]] as Record<string, unknown> | undefined;
  if (parent) delete parent[target[1]];
}

/** The writable state of a group for PATCH: its attributes and member user ids. */
export interface GroupState {
  displayName: string;
  externalId?: string;
  members: string[];
}

const memberFilterPath = /^members\[\s*value\s+eq\s+"([^"\\]*)"\s*\]$/i;

/**
 * Applies PATCH operations to a group: add, replace and remove on
 * displayName, externalId and members, including `members[value eq "id"]`
 * and a remove on `members` with a value list of the members to drop.
 */
export function patchGroup(current: GroupState, operations: readonly PatchOperation[]): GroupState {
  const next: GroupState = { ...current, members: [...current.members] };

  operations.forEach((operation, index) => {
    const op = opOf(operation, index);
    const path = operation.path?.toLowerCase();

    if (path === undefined) {
      if (op === 'remove')
        throw scimError('noTarget', `Operations.${index}.path: remove needs a path.`);
      const value = objectValue(operation.value, index) as Partial<GroupInput>;
      for (const [key, attribute] of Object.entries(value))
        applyGroupAttribute(next, op, key.toLowerCase(), attribute, index);
      return;
    }

    const filtered = memberFilterPath.exec(operation.path ?? '');
    if (filtered) {
      if (op !== 'remove')
        throw scimError(
          'invalidPath',
          `Operations.${index}.path: members[value eq ...] works with remove only.`,
        );
      next.members = next.members.filter((id) => id !== filtered[1]);
      return;
    }

    if (op === 'remove') {
      if (path === 'members') {
        const dropped =
          operation.value === undefined ? undefined : memberIds(operation.value, index);
        next.members = dropped ? next.members.filter((id) => !dropped.includes(id)) : [];
      } else if (path === 'externalid') next.externalId = undefined;
      else if (path === 'displayname')
        throw scimError(
          'mutability',
          `Operations.${index}.path: displayName is required and cannot be removed.`,
        );
      else throw groupPathError(operation.path ?? '', index);
      return;
    }
    applyGroupAttribute(next, op, path, operation.value, index);
  });
  return next;
}

function applyGroupAttribute(
  group: GroupState,
  op: Op,
  path: string,
  value: unknown,
  index: number,
) {
  if (path === 'members') {
    const ids = memberIds(value, index);
    group.members = op === 'add' ? [...new Set([...group.members, ...ids])] : [...new Set(ids)];
  } else if (path === 'displayname') {
    if (typeof value !== 'string')
      throw scimError('invalidValue', `Operations.${index}.value: displayName must be a string.`);
    group.displayName = value;
  } else if (path === 'externalid') {
    if (typeof value !== 'string')
      throw scimError('invalidValue', `Operations.${index}.value: externalId must be a string.`);
    group.externalId = value;
  } else if (path !== 'schemas' && path !== 'id') {
    throw groupPathError(path, index);
  }
}

function memberIds(value: unknown, index: number): string[] {
  const list = Array.isArray(value) ? value : [value];
  return list.map((member) => {
    const id = (member as { value?: unknown } | null)?.value;
    if (typeof id !== 'string' || !id)
      throw scimError(
        'invalidValue',
        `Operations.${index}.value: each member needs a "value" with the user id.`,
      );
    return id;
  });
}

function groupPathError(path: string, index: number) {
  return scimError(
    'invalidPath',
    `Operations.${index}.path: ${JSON.stringify(path)} is not supported; use displayName, externalId, members or members[value eq "id"].`,
  );
}

function objectValue(value: unknown, index: number): Record<string, unknown> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value))
    return value as Record<string, unknown>;
  throw scimError(
    'invalidValue',
    `Operations.${index}.value: without a path, the value must be an object of attributes.`,
  );
}
