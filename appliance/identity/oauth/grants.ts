import { z } from 'zod';

import { problems } from '../../http/problem';
import type { Principal } from '../../http/route';
import type { AccessView } from '../access/decision';
import { permissionNames, type Permission } from '../permissions';

/** A non-empty list of distinct permission names, as API keys take it. */
export const permissionList = z
  .array(z.enum(permissionNames as [Permission, ...Permission[]]))
  .min(1)
  .max(permissionNames.length)
  .refine((list) => new Set(list).size === list.length, 'must not repeat a permission');

/** Name of a client or token family, shown in lists and audit notes. */
export const grantName = z.string().trim().min(1).max(64);

/**
 * Rejects permissions the caller does not hold: each must be granted by the
 * caller's role or grants and, when the caller itself uses a key or access
 * token, by that too. So no grant can be wider than the credential that made it.
 */
export function assertGrantable(
  principal: Principal,
  view: AccessView,
  permissions: readonly Permission[],
): void {
  const isHeld = (permission: Permission) =>
    view.grants.some((grant) => grant.permissions.has(permission)) &&
    (!principal.apiKey || principal.apiKey.permissions.includes(permission));

  const beyond = permissions
    .map((permission, index) => ({ permission, index }))
    .filter(({ permission }) => !isHeld(permission));
  if (!beyond.length) return;

  const holder = principal.apiKey
    ? `your role "${principal.role}", your grants and your credential ${principal.apiKey.id}`
    : `your role "${principal.role}" or your grants`;
  throw problems.invalidRequest(
    `permissions: a grant may hold only permissions of ${holder}`,
    beyond.map(({ permission, index }) => ({
      field: `permissions.${index}`,
      message: `${permission} is not granted to ${holder}; remove it`,
    })),
  );
}
