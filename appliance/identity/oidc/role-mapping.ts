import { roles, type Role } from '../permissions';
import type { OidcSettings } from './settings';

/**
 * Picks the local role for the provider's `groups` claim. A user in several
 * mapped groups gets the first of them in the order of `roles` (admin,
 * author, analyst, auditor), so the result does not depend on claim order.
 * Returns undefined when no group maps and there is no default role.
 */
export function roleForGroups(
  groups: readonly string[],
  settings: Pick<OidcSettings, 'groupRoleMap' | 'defaultRole'>,
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
