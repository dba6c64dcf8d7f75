import { isRole, roles, type Role } from '../permissions';

/** Group-to-role rule of a sign-in source; OIDC, LDAP and SCIM use the same one. */
export interface GroupRoleMapping {
  /** Group name → local role. */
  groupRoleMap: Readonly<Record<string, Role>>;
  /** Role of a user in no mapped group; undefined denies such users. */
  defaultRole?: Role;
}

/**
 * Picks the local role for a user's groups. A user in several mapped groups
 * gets the first of them in the order of `roles` (admin, author, analyst,
 * auditor), so the result does not depend on group order. Returns undefined
 * when no group maps and there is no default role.
 */
export function roleForGroups(
  groups: readonly string[],
  settings: GroupRoleMapping,
): Role | undefined {
  const mapped = new Set(
    groups.flatMap((group) =>
      Object.hasOwn(settings.groupRoleMap, group) ? [settings.groupRoleMap[group]] : [],
    ),
  );
  return roles.find((role) => mapped.has(role)) ?? settings.defaultRole;
}

/** Reads the `groups` claim: a list of strings, or one string; anything else counts as no groups. */
export function groupsClaim(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
  return [];
}

/** Thrown at start-up for a bad group-to-role setting; the message names the setting and the fix. */
export class GroupRoleSettingError extends Error {
  constructor(setting: string, problem: string) {
    super(`Invalid ${setting}: ${problem}`);
    this.name = 'GroupRoleSettingError';
  }
}

/** Parses a JSON object of group name → role from the environment variable `setting`; unset means no groups map. */
export function parseGroupRoleMap(setting: string, raw: string | undefined): Record<string, Role> {
  if (!raw) return {};

  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new GroupRoleSettingError(
      setting,
      'it is not valid JSON; write an object such as {"soc-analysts": "analyst"}.',
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new GroupRoleSettingError(
      setting,
      'it must be a JSON object of group name to role, such as {"soc-analysts": "analyst"}.',
    );

  const map: Record<string, Role> = {};
  for (const [group, role] of Object.entries(parsed)) {
    if (!isRole(role))
      throw new GroupRoleSettingError(
        setting,
        `group ${JSON.stringify(group)} maps to ${JSON.stringify(role)}; use one of ${roles.join(', ')}.`,
      );
    map[group] = role;
  }
  return map;
}

/** Parses a default role setting: unset or `none` means users in no mapped group are denied. */
export function parseDefaultRole(setting: string, raw: string | undefined): Role | undefined {
  if (!raw || raw === 'none') return undefined;
  if (isRole(raw)) return raw;
  throw new GroupRoleSettingError(
    setting,
    `${JSON.stringify(raw)} is not a role; use none or one of ${roles.join(', ')}.`,
  );
}
