import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';
import { z } from 'zod';

import { problems } from '../../http/problem';
import type { Database } from '../../platform/database';
import { breakGlassRole, builtInRoles, permissionNames, type Permission } from '../permissions';

export const roleNamePattern = /^[a-z][a-z0-9-]{1,39}$/;

export const roleDefinitionSchema = z
  .object({
    name: z
      .string()
      .regex(
        roleNamePattern,
        'must be 2 to 40 lower-case letters, digits or hyphens, starting with a letter',
      ),
    description: z.string().trim().max(500).default(''),
    permissions: z
      .array(z.enum(permissionNames as [Permission, ...Permission[]]))
      .max(permissionNames.length)
      .default([]),
    inherits: z.array(z.string().regex(roleNamePattern, 'must name a role')).max(16).default([]),
  })
  .strict();

export type RoleDefinition = z.infer<typeof roleDefinitionSchema>;

export interface RoleView extends RoleDefinition {
  builtIn: boolean;
  /** Every permission the role grants, its parents' included. */
  effectivePermissions: Permission[];
}

interface RoleRow {
  name: string;
  description: string;
  permissions: string;
  inherits: string;
}

/**
 * Built-in roles from code and custom roles from SQLite, with inheritance
 * resolved. The appliance is one process, so the catalogue caches custom
 * roles and reloads them after each change it makes.
 */
export class RoleCatalogue {
  private custom = new Map<string, RoleDefinition>();
  private expanded = new Map<string, ReadonlySet<Permission>>();

  constructor(private readonly database: Database) {}

  async load(transaction?: Transaction): Promise<void> {
    const rows = await this.database.sequelize.query<RoleRow>(
      'SELECT name, description, permissions, inherits FROM access_roles',
      { type: QueryTypes.SELECT, transaction },
    );
    this.custom = new Map(
      rows.map((row) => [
        row.name,
        {
          name: row.name,
          description: row.description,
          permissions: JSON.parse(row.permissions) as Permission[],
          inherits: JSON.parse(row.inherits) as string[],
        },
      ]),
    );
    this.expanded.clear();
  }

  exists(name: string): boolean {
    return name in builtInRoles || this.custom.has(name);
  }

  isBuiltIn(name: string): boolean {
    return name in builtInRoles;
  }

  /** Returns the permissions `name` grants with its parents'; empty for an unknown role. */
  permissionsOf(name: string): ReadonlySet<Permission> {
    const cached = this.expanded.get(name);
    if (cached) return cached;

    const result = new Set<Permission>();
    const seen = new Set<string>();
    const visit = (role: string) => {
      if (seen.has(role)) return;
      seen.add(role);
      const definition = this.definitionOf(role);
      if (!definition) return;
      for (const permission of definition.permissions) result.add(permission);
      for (const parent of definition.inherits) visit(parent);
    };
    visit(name);

    this.expanded.set(name, result);
    return result;
  }

  list(): RoleView[] {
    const names = [...Object.keys(builtInRoles), ...[...this.custom.keys()].sort()];
    return names.map((name) => this.view(name)!);
  }

  view(name: string): RoleView | undefined {
    const definition = this.definitionOf(name);
    if (!definition) return undefined;
    return {
      ...definition,
      builtIn: this.isBuiltIn(name),
      effectivePermissions: permissionNames.filter((permission) =>
        this.permissionsOf(name).has(permission),
      ),
    };
  }

  /** Checks a custom role before it is stored: free name, known parents, no cycle. */
  validate(definition: RoleDefinition, options: { replacing?: boolean } = {}): void {
    if (this.isBuiltIn(definition.name))
      throw fieldProblem('name', `"${definition.name}" is a built-in role; choose another name`);
    if (!options.replacing && this.custom.has(definition.name))
      throw problems.conflict(
        `A role named "${definition.name}" already exists; update it instead.`,
      );

    definition.inherits.forEach((parent, index) => {
      if (parent === breakGlassRole)
        throw fieldProblem(`inherits.${index}`, 'the break-glass role cannot be inherited');
      if (!this.exists(parent))
        throw fieldProblem(
          `inherits.${index}`,
          `no role is named "${parent}"; list roles with GET /api/v1/access/roles`,
        );
      if (parent === definition.name || this.inheritsFrom(parent, definition.name))
        throw fieldProblem(
          `inherits.${index}`,
          `"${parent}" already inherits from "${definition.name}", which would make a cycle`,
        );
    });
  }

  async create(
    definition: RoleDefinition,
    actorId: string,
    transaction: Transaction,
  ): Promise<RoleView> {
    this.validate(definition);
    const now = new Date().toISOString();
    await this.database.sequelize.query(
      `INSERT INTO access_roles (id, name, description, permissions, inherits, created_by, created_at, updated_at)
       VALUES (:id, :name, :description, :permissions, :inherits, :actorId, :now, :now)`,
      {
        transaction,
        replacements: { id: crypto.randomUUID(), actorId, now, ...columnsOf(definition) },
      },
    );
    return this.reloadAndView(definition.name, transaction);
  }

  async replace(
    definition: RoleDefinition,
    transaction: Transaction,
  ): Promise<{ before: RoleView; after: RoleView }> {
    const before = this.customView(definition.name);
    this.validate(definition, { replacing: true });
    await this.database.sequelize.query(
      `UPDATE access_roles SET description = :description, permissions = :permissions, inherits = :inherits,
         updated_at = :now WHERE name = :name`,
      { transaction, replacements: { now: new Date().toISOString(), ...columnsOf(definition) } },
    );
    return { before, after: await this.reloadAndView(definition.name, transaction) };
  }

  /** Deletes a custom role that no live grant uses and no role inherits from. */
  async remove(name: string, transaction: Transaction): Promise<RoleView> {
    const before = this.customView(name);
    const heirs = [...this.custom.values()].filter((role) => role.inherits.includes(name));
    if (heirs.length)
      throw problems.conflict(
        `Roles ${heirs.map((role) => `"${role.name}"`).join(', ')} inherit from "${name}"; change them first.`,
      );

    const [{ count }] = await this.database.sequelize.query<{ count: number }>(
      'SELECT COUNT(*) AS count FROM access_grants WHERE role = :name AND revoked_at IS NULL',
      { type: QueryTypes.SELECT, transaction, replacements: { name } },
    );
    if (count > 0)
      throw problems.conflict(`${count} live grant(s) use the role "${name}"; revoke them first.`);

    await this.database.sequelize.query('DELETE FROM access_roles WHERE name = :name', {
      transaction,
      replacements: { name },
    });
    await this.load(transaction);
    return before;
  }

  private customView(name: string): RoleView {
    if (this.isBuiltIn(name))
      throw problems.conflict(
        `"${name}" is a built-in role and cannot be changed; create a custom role that inherits from it.`,
      );
    const view = this.custom.has(name) ? this.view(name) : undefined;
    if (!view)
      throw problems.notFoundDetail(
        `No role is named "${name}"; list roles with GET /api/v1/access/roles.`,
      );
    return view;
  }

  private async reloadAndView(name: string, transaction: Transaction): Promise<RoleView> {
    await this.load(transaction);
    return this.view(name)!;
  }

  private definitionOf(name: string): RoleDefinition | undefined {
    const builtIn = (builtInRoles as Record<string, (typeof builtInRoles)['admin'] | undefined>)[
      name
    ];
    if (builtIn)
      return {
        name,
        description: builtIn.description,
        permissions: [...builtIn.permissions],
        inherits: [...builtIn.inherits],
      };
    return this.custom.get(name);
  }

  private inheritsFrom(role: string, ancestor: string, seen = new Set<string>()): boolean {
    if (seen.has(role)) return false;
    seen.add(role);
    const parents = this.definitionOf(role)?.inherits ?? [];
    return parents.some(
      (parent) => parent === ancestor || this.inheritsFrom(parent, ancestor, seen),
    );
  }
}

function columnsOf(definition: RoleDefinition) {
  return {
    name: definition.name,
    description: definition.description,
    permissions: JSON.stringify([...new Set(definition.permissions)]),
    inherits: JSON.stringify([...new Set(definition.inherits)]),
  };
}

export function fieldProblem(field: string, message: string) {
  return problems.invalidRequest(`${field}: ${message}`, [{ field, message }]);
}
