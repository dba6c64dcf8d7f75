import type { Permission } from '../../../appliance/identity/permissions';

/**
 * What the console offers to the signed-in user, derived from the permission list of
 * GET /access/me: the base role, grants of built-in and custom roles at any scope, delegations
 * and open break-glass access. The server still decides every request, and the console only
 * hides what the user cannot use. A flag that needs several permissions is on only when all of them
 * are held, so a page never offers an action the appliance rejects for the missing permission.
 */
export interface Permissions {
  /** See the prompt list (titles, folders, tags) (prompts:read). */
  listPrompts: boolean;
  /** Create folders and prompts, add versions, archive prompts (prompts:create, prompts:update, folders:create). */
  editPrompts: boolean;
  /** Open a prompt to read its versions and bodies, beyond the list metadata (prompts:read). */
  readPromptBodies: boolean;
  readAlerts: boolean;
  /** Acknowledge, close and reopen alerts. */
  updateAlerts: boolean;
  /** List, create and change user accounts (users:read, users:create, users:update). */
  manageUsers: boolean;
  /** See the key inventory and the rotation history (keys:read). */
  readKeys: boolean;
  /** Start an emergency master key rotation (keys:execute). */
  rotateKeys: boolean;
  /** See and change roles and grants (users:read, users:update, settings:create). */
  manageAccess: boolean;
  /** Approve changes, review break-glass use and decide access reviews (users:approve). */
  approveAccess: boolean;
  /** See break-glass activations and access reviews (evidence:read). */
  readAccessEvidence: boolean;
  /** List the customer projects, for example to pick an API key's project limit (projects:read). */
  listProjects: boolean;
}

/** A permission string of the appliance, such as `prompts:read`. */
export type PermissionName = Permission;

/** The permissions that each flag needs, all of them. */
const FLAG_REQUIREMENTS: Record<keyof Permissions, readonly PermissionName[]> = {
  listPrompts: ['prompts:read'],
  editPrompts: ['prompts:create', 'prompts:update', 'folders:create'],
  readPromptBodies: ['prompts:read'],
  readAlerts: ['alerts:read'],
  updateAlerts: ['alerts:update'],
  manageUsers: ['users:read', 'users:create', 'users:update'],
  readKeys: ['keys:read'],
  rotateKeys: ['keys:execute'],
  manageAccess: ['users:read', 'users:update', 'settings:create'],
  approveAccess: ['users:approve'],
  readAccessEvidence: ['evidence:read'],
  listProjects: ['projects:read'],
};

/**
 * Derives the page flags from the user's effective permissions, as `permissions` of
 * GET /access/me lists them. An empty list, such as before that request has returned, turns
 * every flag off.
 */
export function permissionsFor(granted: readonly string[]): Permissions {
  const held = new Set(granted);
  const entries = Object.entries(FLAG_REQUIREMENTS).map(([flag, needed]) => [
    flag,
    needed.every((permission) => held.has(permission)),
  ]);
  return Object.fromEntries(entries) as Permissions;
}

/** The page that an empty console address opens: the first section the user may see. */
export function homeSection(permissions: Permissions): 'prompts' | 'alerts' | undefined {
  if (permissions.listPrompts) return 'prompts';
  if (permissions.readAlerts) return 'alerts';
  return undefined;
}
