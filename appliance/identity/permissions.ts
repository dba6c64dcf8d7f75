/**
 * The permission catalogue: resource types, actions and the built-in roles.
 * A permission is `resource:action`. Which user has what, where and under which
 * conditions is decided in one place, `AccessControl.decide`
 * (appliance/identity/access/decision.ts); this module only names things.
 */
export const roles = ['admin', 'author', 'analyst', 'auditor'] as const;
/** A built-in role a user can hold as their base role. */
export type Role = (typeof roles)[number];

export const resources = [
  'prompts',
  'folders',
  'projects',
  'alerts',
  'incidents',
  'evidence',
  'reports',
  'keys',
  'users',
  'settings',
  'analytics',
  'audit',
] as const;
export type Resource = (typeof resources)[number];

export const actions = [
  'create',
  'read',
  'update',
  'delete',
  'execute',
  'approve',
  'share',
  'export',
] as const;
export type Action = (typeof actions)[number];

export type Permission = `${Resource}:${Action}`;

export const permissionNames: readonly Permission[] = resources.flatMap((resource) =>
  actions.map((action) => `${resource}:${action}` as Permission),
);

/**
 * The emergency role that break-glass access grants for a bounded time. It is
 * never a base role and cannot be bound to anyone by a normal grant.
 */
export const breakGlassRole = 'break-glass';

interface BuiltInRole {
  description: string;
  inherits: readonly string[];
  permissions: readonly Permission[];
}

/** Built-in roles; custom roles may inherit from them. */
export const builtInRoles: Record<Role | typeof breakGlassRole, BuiltInRole> = {
  admin: {
    description: 'Runs the appliance: users, access, keys, settings and all data.',
    inherits: [],
    permissions: permissionNames,
  },
  author: {
    description: 'Writes and versions prompts in folders.',
    inherits: [],
    permissions: [
      'prompts:create',
      'prompts:read',
      'prompts:update',
      'folders:create',
      'folders:read',
      'folders:update',
    ],
  },
  analyst: {
    description: 'Works alerts and incidents in the SOC console.',
    inherits: [],
    permissions: [
      'prompts:read',
      'folders:read',
      'alerts:read',
      'alerts:update',
      'incidents:create',
      'incidents:read',
      'incidents:update',
      'evidence:create',
      'evidence:read',
      'analytics:read',
    ],
  },
  auditor: {
    description: 'Reads the audit trail, keys and evidence, and produces reports.',
    inherits: [],
    permissions: [
      'folders:read',
      'alerts:read',
      'audit:read',
      'audit:execute',
      'keys:read',
      'incidents:read',
      'evidence:read',
      'evidence:export',
      'reports:create',
      'reports:read',
      'reports:export',
      'analytics:read',
    ],
  },
  [breakGlassRole]: {
    description: 'Emergency access with every permission, time-boxed, alerted and reviewed.',
    inherits: ['admin'],
    permissions: [],
  },
};

const baseRoleSets = new Map<Role, ReadonlySet<Permission>>(
  roles.map((role) => [role, new Set(builtInRoles[role].permissions)]),
);

/** Tells whether a built-in base role grants `permission` at appliance scope, before any other grant. */
export function baseRoleGrants(role: Role, permission: Permission): boolean {
  return baseRoleSets.get(role)?.has(permission) ?? false;
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (roles as readonly string[]).includes(value);
}

export function isPermission(value: unknown): value is Permission {
  return typeof value === 'string' && (permissionNames as readonly string[]).includes(value);
}
