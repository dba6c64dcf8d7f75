import { QueryTypes, type Transaction } from 'sequelize';
import { z } from 'zod';

import { problems } from '../../http/problem';
import type { RouteContext, RouteResult } from '../../http/route';
import type { Database } from '../../platform/database';
import { breakGlassRole, roles, type Role } from '../permissions';
import { ChangeRequestStore, type ChangeKind, type ChangeRequest } from './change-requests';
import { conditionsSchema } from './conditions';
import type { AccessControl } from './decision';
import type { Grant } from './grants';
import { fieldProblem, roleDefinitionSchema, roleNamePattern, type RoleDefinition } from './roles';
import { applianceScope, describeScope, scopeSchema, type Scope } from './scope';

type AnyContext = RouteContext<unknown, unknown, unknown>;

/** Maximum lifetime of a time-bound grant or renewal, so a person looks at every grant again within a year. */
export const maxGrantLifetimeMs = 365 * 24 * 60 * 60 * 1000;

export const newGrantSchema = z
  .object({
    userId: z.uuid(),
    role: z.string().regex(roleNamePattern, 'must name a role'),
    scope: scopeSchema.default(applianceScope),
    conditions: conditionsSchema.optional(),
    expiresAt: z.iso.datetime({ offset: true }).optional(),
    justification: z.string().trim().min(1).max(500).optional(),
  })
  .strict();
export type NewGrantRequest = z.infer<typeof newGrantSchema>;

export const userRoleChangeSchema = z.object({ userId: z.uuid(), role: z.enum(roles) }).strict();

/** Changes a user's base role and ends their sessions; provided by the identity service. */
export type ChangeUserRole = (
  userId: string,
  role: Role,
  transaction: Transaction,
) => Promise<{ before: { role: Role }; after: { role: Role } }>;

/**
 * Applies changes to roles and grants, directly or, when the appliance
 * requires a second approver, as change requests another admin approves.
 * Each change is checked when it is asked for and again when it is applied.
 */
export class AccessChanges {
  readonly requests: ChangeRequestStore;

  constructor(
    private readonly database: Database,
    private readonly access: AccessControl,
    private readonly changeUserRole: ChangeUserRole,
    readonly approvalRequired: boolean,
  ) {
    this.requests = new ChangeRequestStore(database);
  }

  /** Checks a change, then applies it (201/200) or files it for approval (202). */
  async submit(
    context: AnyContext,
    kind: ChangeKind,
    payload: Record<string, unknown>,
  ): Promise<RouteResult> {
    const actorId = context.principal!.userId;
    const summary = await this.check(kind, payload);

    if (!this.approvalRequired) {
      const result = await this.applyInCommit(context, kind, payload, actorId);
      return { status: kind.endsWith('create') ? 201 : 200, body: result };
    }

    const request = await context.commit(async (transaction) => {
      const created = await this.requests.create(
        { kind, payload, summary, requestedBy: actorId },
        transaction,
      );
      context.resourceId = created.id;
      context.auditNote = `change request ${kind} awaits a second approver`;
      return created;
    });
    return { status: 202, body: { changeRequest: request } };
  }

  /** Applies a pending request; the approver must be someone other than the requester. */
  async approve(context: AnyContext, id: string, comment?: string): Promise<ChangeRequest> {
    const approverId = context.principal!.userId;
    const request = await this.pending(id, approverId);
    await this.check(request.kind, request.payload);

    await this.applyInCommit(
      context,
      request.kind,
      request.payload,
      request.requestedBy,
      async (transaction) => {
        await this.requests.decide(
          id,
          { status: 'approved', by: approverId, comment },
          transaction,
        );
      },
    );
    return (await this.requests.get(id))!;
  }

  async reject(context: AnyContext, id: string, comment?: string): Promise<ChangeRequest> {
    const approverId = context.principal!.userId;
    await this.pending(id, approverId);
    await context.commit((transaction) =>
      this.requests.decide(id, { status: 'rejected', by: approverId, comment }, transaction),
    );
    return (await this.requests.get(id))!;
  }

  private async pending(id: string, deciderId: string): Promise<ChangeRequest> {
    const request = await this.requests.get(id);
    if (!request)
      throw problems.notFoundDetail(
        `No change request ${id}; list them with GET /api/v1/access/change-requests.`,
      );
    if (request.status !== 'pending')
      throw problems.conflict(`Change request ${id} was already ${request.status}.`);
    if (request.requestedBy === deciderId)
      throw problems.forbidden(
        'A change needs a second person: you asked for this one, so another admin must decide it.',
      );
    return request;
  }

  /** The role catalogue caches custom roles; a rolled-back change must not leave them in memory. */
  private async applyInCommit(
    context: AnyContext,
    kind: ChangeKind,
    payload: Record<string, unknown>,
    actorId: string,
    extra?: (transaction: Transaction) => Promise<void>,
  ): Promise<unknown> {
    try {
      return await context.commit(async (transaction) => {
        await extra?.(transaction);
        const { result, note } = await this.apply(kind, payload, actorId, transaction);
        context.auditNote = note;
        if (result && typeof result === 'object' && 'id' in result)
          context.resourceId = String(result.id);
        return result;
      });
    } catch (error) {
      await this.access.roles.load();
      throw error;
    }
  }

  /** Validates a change against the current state and returns its summary. */
  private async check(kind: ChangeKind, payload: Record<string, unknown>): Promise<string> {
    switch (kind) {
      case 'role.create':
      case 'role.replace': {
        const definition = payload as RoleDefinition;
        this.access.roles.validate(definition, { replacing: kind === 'role.replace' });
        return `${kind === 'role.create' ? 'Create' : 'Change'} role "${definition.name}" with ${definition.permissions.length} permission(s), inheriting ${definition.inherits.join(', ') || 'nothing'}.`;
      }
      case 'role.delete':
        if (
          !this.access.roles.exists(String(payload.name)) ||
          this.access.roles.isBuiltIn(String(payload.name))
        )
          throw problems.notFoundDetail(`No custom role is named "${String(payload.name)}".`);
        return `Delete role "${String(payload.name)}".`;
      case 'grant.create': {
        const grant = payload as NewGrantRequest;
        const username = await this.checkGrant(grant);
        return `Grant role "${grant.role}" on ${describeScope(grant.scope)} to ${username}${grant.expiresAt ? ` until ${grant.expiresAt}` : ''}.`;
      }
      case 'user.role': {
        const change = userRoleChangeSchema.parse(payload);
        const username = await this.usernameOf(change.userId, 'userId');
        return `Change the base role of ${username} to "${change.role}".`;
      }
    }
  }

  private async apply(
    kind: ChangeKind,
    payload: Record<string, unknown>,
    actorId: string,
    transaction: Transaction,
  ): Promise<{ result: unknown; note: string }> {
    const roles = this.access.roles;
    switch (kind) {
      case 'role.create': {
        const created = await roles.create(
          roleDefinitionSchema.parse(payload),
          actorId,
          transaction,
        );
        return {
          result: created,
          note: `created role ${created.name}: ${created.effectivePermissions.join(',')}`,
        };
      }
      case 'role.replace': {
        const { before, after } = await roles.replace(
          roleDefinitionSchema.parse(payload),
          transaction,
        );
        return {
          result: after,
          note: `role ${after.name} before=${before.effectivePermissions.join(',')} after=${after.effectivePermissions.join(',')}`,
        };
      }
      case 'role.delete': {
        const removed = await roles.remove(String(payload.name), transaction);
        return {
          result: undefined,
          note: `deleted role ${removed.name}: ${removed.effectivePermissions.join(',')}`,
        };
      }
      case 'grant.create': {
        const request = newGrantSchema.parse(payload);
        const grant = await this.access.grants.create(
          {
            userId: request.userId,
            role: request.role,
            permissions: null,
            scope: request.scope,
            conditions: request.conditions ?? null,
            source: 'grant',
            grantedBy: actorId,
            justification: request.justification ?? null,
            expiresAt: request.expiresAt ? new Date(request.expiresAt).toISOString() : null,
          },
          transaction,
        );
        return { result: grant, note: grantNote(grant) };
      }
      case 'user.role': {
        const change = userRoleChangeSchema.parse(payload);
        const { before, after } = await this.changeUserRole(
          change.userId,
          change.role,
          transaction,
        );
        return {
          result: { userId: change.userId, role: after.role },
          note: `role before=${before.role} after=${after.role}`,
        };
      }
    }
  }

  /** Counts the enabled admins other than `userId`: the people who could approve a change. */
  otherAdmins(userId: string): Promise<number> {
    return this.access.grants.otherAdmins(userId);
  }

  /** Checks the grantee, role, scope and expiry of a new grant; returns the grantee's name. */
  async checkGrant(grant: NewGrantRequest): Promise<string> {
    const username = await this.usernameOf(grant.userId, 'userId');
    if (grant.role === breakGlassRole)
      throw fieldProblem(
        'role',
        'break-glass access is opened with POST /api/v1/access/break-glass, not granted',
      );
    if (!this.access.roles.exists(grant.role))
      throw fieldProblem(
        'role',
        `no role is named "${grant.role}"; list roles with GET /api/v1/access/roles`,
      );
    await assertScopeExists(this.database, grant.scope);
    if (grant.expiresAt) assertFutureExpiry(grant.expiresAt, 'expiresAt', maxGrantLifetimeMs);
    return username;
  }

  private async usernameOf(userId: string, field: string): Promise<string> {
    const rows = await this.database.sequelize.query<{ username: string; disabled: number }>(
      'SELECT username, disabled FROM users WHERE id = :userId',
      { type: QueryTypes.SELECT, replacements: { userId } },
    );
    if (!rows[0])
      throw fieldProblem(field, `no user has the id ${userId}; list users with GET /api/v1/users`);
    if (rows[0].disabled) throw fieldProblem(field, `the user ${rows[0].username} is disabled`);
    return rows[0].username;
  }
}

/** Describes a grant in a short, secret-free note for the audit record. */
export function grantNote(grant: Grant): string {
  const what = grant.role
    ? `role=${grant.role}`
    : `permissions=${(grant.permissions ?? []).join(',')}`;
  return `${grant.source} ${grant.id} user=${grant.userId} ${what} scope=${describeScope(grant.scope)}${grant.expiresAt ? ` expires=${grant.expiresAt}` : ''}`;
}

/** Throws a 400 naming `scope.id` unless the project or folder the scope names exists. */
export async function assertScopeExists(database: Database, scope: Scope): Promise<void> {
  if (scope.type === 'appliance') return;
  const table = scope.type === 'project' ? 'projects' : 'folders';
  const rows = await database.sequelize.query(`SELECT id FROM ${table} WHERE id = :id`, {
    type: QueryTypes.SELECT,
    replacements: { id: scope.id },
  });
  if (!rows.length)
    throw fieldProblem(
      'scope.id',
      `no ${scope.type} has the id ${scope.id}; list them with GET /api/v1/${table}`,
    );
}

/** Throws a 400 naming `field` unless `text` is in the future and at most `maxMs` away. */
export function assertFutureExpiry(text: string, field: string, maxMs: number): Date {
  const at = new Date(text);
  const now = Date.now();
  if (at.getTime() <= now) throw fieldProblem(field, 'must be in the future');
  if (at.getTime() > now + maxMs)
    throw fieldProblem(field, `must be at most ${Math.round(maxMs / 86_400_000)} days from now`);
  return at;
}
