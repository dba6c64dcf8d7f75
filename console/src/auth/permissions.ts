// The permission catalogue has no imports of its own, so the console bundles the appliance's
// copy and offers API key permissions exactly as the appliance grants them.
import { builtInRoles, isRole, type Permission } from '../../../appliance/identity/permissions';

/**
 * What the console offers to each role, mirroring the grants in
 * appliance/identity/permissions.ts. The server enforces them; the console only hides what a
 * role cannot use. An unknown role sees nothing.
 */
export interface Permissions {
  /** See the prompt list (titles, folders, tags). */
  listPrompts: boolean;
  /** Create folders and prompts, add versions, archive prompts. */
  editPrompts: boolean;
  /** Open a prompt to read its versions and bodies, beyond the list metadata. */
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
}

type RoleFlags = Omit<Permissions, 'manageAccess' | 'approveAccess' | 'readAccessEvidence'>;

const NO_PERMISSIONS: Permissions = {
  manageAccess: false,
  approveAccess: false,
  readAccessEvidence: false,
  listPrompts: false,
  editPrompts: false,
  readPromptBodies: false,
  readAlerts: false,
  updateAlerts: false,
  manageUsers: false,
  readKeys: false,
  rotateKeys: false,
};

const ROLE_PERMISSIONS: Record<string, RoleFlags> = {
  admin: {
    listPrompts: true,
    editPrompts: true,
    readPromptBodies: true,
    readAlerts: true,
    updateAlerts: true,
    manageUsers: true,
    readKeys: true,
    rotateKeys: true,
  },
  author: {
    listPrompts: true,
    editPrompts: true,
    readPromptBodies: true,
    readAlerts: false,
    updateAlerts: false,
    manageUsers: false,
    readKeys: false,
    rotateKeys: false,
  },
  analyst: {
    listPrompts: true,
    editPrompts: false,
    readPromptBodies: true,
    readAlerts: true,
    updateAlerts: true,
    manageUsers: false,
    readKeys: false,
    rotateKeys: false,
  },
  // Auditors read alerts and the audit trail; prompts are outside their grant.
  auditor: {
    listPrompts: false,
    editPrompts: false,
    readPromptBodies: false,
    readAlerts: true,
    updateAlerts: false,
    manageUsers: false,
    readKeys: true,
    rotateKeys: false,
  },
};

export function permissionsFor(role: string | undefined): Permissions {
  if (role === undefined || !Object.hasOwn(ROLE_PERMISSIONS, role)) return NO_PERMISSIONS;
  // The access control flags come straight from the role's permission strings.
  const granted = new Set<string>(grantedPermissions(role));
  return {
    ...ROLE_PERMISSIONS[role],
    manageAccess: ['users:read', 'users:update', 'settings:create'].every((name) =>
      granted.has(name),
    ),
    approveAccess: granted.has('users:approve'),
    readAccessEvidence: granted.has('evidence:read'),
  };
}

/** The page that an empty console address opens: the first section the role may see. */
export function homeSection(permissions: Permissions): 'prompts' | 'alerts' | undefined {
  if (permissions.listPrompts) return 'prompts';
  if (permissions.readAlerts) return 'alerts';
  return undefined;
}

/** A permission string of the appliance, such as `prompts:read`. */
export type PermissionName = Permission;

/**
 * Lists the permission strings a role grants, which are the ones an API key of that role's
 * user may hold. An unknown role grants none.
 */
export function grantedPermissions(role: string | undefined): readonly PermissionName[] {
  if (!isRole(role)) return [];
  return builtInRoles[role].permissions;
}
