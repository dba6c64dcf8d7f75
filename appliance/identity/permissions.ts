/**
 * Built-in roles and what each may do. Every route names one permission and
 * `isAllowed` is the only place that decides; finer grants (scopes,
 * conditions, custom roles) grow here.
 */
export const roles = ['admin', 'author', 'analyst', 'auditor'] as const;
export type Role = (typeof roles)[number];

export const resources = [
  'prompts',
  'folders',
  'alerts',
  'audit',
  'users',
  'settings',
  'keys',
  'projects',
] as const;
export type Resource = (typeof resources)[number];

export const actions = ['create', 'read', 'update', 'delete', 'execute'] as const;
export type Action = (typeof actions)[number];

export type Permission = `${Resource}:${Action}`;

const grants: Record<Role, readonly Permission[]> = {
  admin: resources.flatMap((resource) =>
    actions.map((action) => `${resource}:${action}` as Permission),
  ),
  author: [
    'prompts:create',
    'prompts:read',
    'prompts:update',
    'folders:create',
    'folders:read',
    'folders:update',
  ],
  analyst: ['prompts:read', 'folders:read', 'alerts:read', 'alerts:update'],
  auditor: ['folders:read', 'alerts:read', 'audit:read', 'audit:execute', 'keys:read'],
};

const grantSets = new Map<Role, ReadonlySet<Permission>>(
  roles.map((role) => [role, new Set(grants[role])]),
);

/** Decides whether `role` grants `permission`. */
export function isAllowed(role: Role, permission: Permission): boolean {
  return grantSets.get(role)?.has(permission) ?? false;
}

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (roles as readonly string[]).includes(value);
}
