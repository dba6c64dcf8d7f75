import { z } from 'zod';

import { problems } from '../../http/problem';
import { route, type RouteSpec } from '../../http/route';
import { permissionNames, type Permission, type Role } from '../permissions';
import type { AccessChanges } from './changes';
import {
  assertFutureExpiry,
  assertScopeExists,
  grantNote,
  maxGrantLifetimeMs,
  newGrantSchema,
} from './changes';
import { conditionsSchema } from './conditions';
import { scopeContains, type AccessControl, type EffectiveGrant } from './decision';
import type { Grant } from './grants';
import { fieldProblem, roleDefinitionSchema, roleNamePattern } from './roles';
import { applianceScope, scopeSchema } from './scope';

/** Maximum length of a delegation: a stand-in for a holiday, not a new role. */
export const maxDelegationMs = 30 * 24 * 60 * 60 * 1000;

const roleName = z.object({ name: z.string().regex(roleNamePattern, 'must name a role') });
const byId = z.object({ id: z.uuid() });
const grantFilter = z
  .object({
    userId: z.uuid().optional(),
    source: z.enum(['grant', 'delegation', 'break-glass']).optional(),
    includeEnded: z.enum(['true', 'false']).optional(),
  })
  .strict();
const renewal = z
  .object({
    expiresAt: z.iso.datetime({ offset: true }),
    comment: z.string().trim().max(500).optional(),
  })
  .strict();
const decisionComment = z.object({ comment: z.string().trim().max(500).optional() }).strict();
const newDelegation = z
  .object({
    delegateId: z.uuid(),
    permissions: z
      .array(z.enum(permissionNames as [Permission, ...Permission[]]))
      .min(1)
      .max(permissionNames.length),
    scope: scopeSchema.default(applianceScope),
    conditions: conditionsSchema.optional(),
    expiresAt: z.iso.datetime({ offset: true }),
    justification: z.string().trim().min(1).max(500).optional(),
  })
  .strict();

/** Roles, grants, delegations, effective access and change approval. */
export function accessRoutes(access: AccessControl, changes: AccessChanges): RouteSpec[] {
  return [
    route({
      method: 'get',
      path: '/access/roles',
      action: 'access.role.list',
      resource: 'role',
      access: 'users:read',
      async handler() {
        return { body: { items: access.roles.list() } };
      },
    }),

    route({
      method: 'post',
      path: '/access/roles',
      action: 'access.role.create',
      resource: 'role',
      access: 'settings:create',
      body: roleDefinitionSchema,
      async handler(context) {
        return changes.submit(context, 'role.create', context.body);
      },
    }),

    route({
      method: 'get',
      path: '/access/roles/:name',
      action: 'access.role.read',
      resource: 'role',
      access: 'users:read',
      params: roleName,
      async handler(context) {
        const view = access.roles.view(context.params.name);
        if (!view)
          throw problems.notFoundDetail(
            `No role is named "${context.params.name}"; list roles with GET /api/v1/access/roles.`,
          );
        return { body: view };
      },
    }),

    route({
      method: 'put',
      path: '/access/roles/:name',
      action: 'access.role.update',
      resource: 'role',
      access: 'settings:update',
      params: roleName,
      body: roleDefinitionSchema.omit({ name: true }),
      async handler(context) {
        context.resourceId = context.params.name;
        if (!access.roles.exists(context.params.name))
          throw problems.notFoundDetail(
            `No role is named "${context.params.name}"; create it with POST /api/v1/access/roles.`,
          );
        return changes.submit(context, 'role.replace', {
          ...context.body,
          name: context.params.name,
        });
      },
    }),

    route({
      method: 'delete',
      path: '/access/roles/:name',
      action: 'access.role.delete',
      resource: 'role',
      access: 'settings:delete',
      params: roleName,
      async handler(context) {
        context.resourceId = context.params.name;
        const result = await changes.submit(context, 'role.delete', { name: context.params.name });
        return result.status === 202 ? result : { status: 204 };
      },
    }),

    route({
      method: 'get',
      path: '/access/grants',
      action: 'access.grant.list',
      resource: 'grant',
      access: 'users:read',
      query: grantFilter,
      async handler(context) {
        const { userId, source, includeEnded } = context.query;
        return {
          body: {
            items: await access.grants.list({
              userId,
              source,
              includeEnded: includeEnded === 'true',
            }),
          },
        };
      },
    }),

    route({
      method: 'post',
      path: '/access/grants',
      action: 'access.grant.create',
      resource: 'grant',
      access: 'users:update',
      body: newGrantSchema,
      async handler(context) {
        return changes.submit(context, 'grant.create', context.body);
      },
    }),

    route({
      method: 'delete',
      path: '/access/grants/:id',
      action: 'access.grant.revoke',
      resource: 'grant',
      access: 'users:update',
      params: byId,
      async handler(context) {
        const grant = await liveGrant(access, context.params.id);
        await context.commit(async (transaction) => {
          await access.grants.revoke(
            grant.id,
            context.principal!.userId,
            'revoked by an admin',
            transaction,
          );
          context.auditNote = `revoked ${grantNote(grant)}`;
        });
      },
    }),

    route({
      method: 'post',
      path: '/access/grants/:id/renew',
      action: 'access.grant.renew',
      resource: 'grant',
      access: 'users:approve',
      params: byId,
      body: renewal,
      async handler(context) {
        const grant = await liveGrant(access, context.params.id);
        const approverId = context.principal!.userId;
        if (grant.source !== 'grant' || !grant.expiresAt)
          throw problems.conflict(
            'Only time-bound grants are renewed; this one has no expiry or is not a grant.',
          );
        if (grant.userId === approverId)
          throw problems.forbidden('You cannot renew your own access; another approver must.');

        const expiresAt = assertFutureExpiry(
          context.body.expiresAt,
          'expiresAt',
          maxGrantLifetimeMs,
        );
        await context.commit(async (transaction) => {
          await access.grants.renew(grant.id, expiresAt, approverId, transaction);
          context.auditNote = `renewed ${grant.id} from ${grant.expiresAt} to ${expiresAt.toISOString()}`;
        });
        return { body: await access.grants.get(grant.id) };
      },
    }),

    route({
      method: 'get',
      path: '/access/users/:id',
      action: 'access.user.read',
      resource: 'user',
      access: 'users:read',
      params: byId,
      async handler(context) {
        const subject = await access.grants.userRole(context.params.id);
        if (!subject)
          throw problems.notFoundDetail(
            `No user has the id ${context.params.id}; list users with GET /api/v1/users.`,
          );
        const grants = await access.effectiveGrants(
          { userId: context.params.id, role: subject.role },
          new Date(),
        );
        return {
          body: { userId: context.params.id, role: subject.role, grants: grants.map(presentGrant) },
        };
      },
    }),

    route({
      method: 'get',
      path: '/access/me',
      action: 'access.me.read',
      resource: 'user',
      access: 'signed-in',
      async handler(context) {
        const view = await context.access();
        const body: OwnAccessView = {
          userId: view.subject.userId,
          role: view.subject.role,
          permissions: view.permissions(),
          grants: view.grants.map(presentGrant),
        };
        return { body };
      },
    }),

    route({
      method: 'post',
      path: '/access/delegations',
      action: 'access.delegation.create',
      resource: 'grant',
      access: 'signed-in',
      body: newDelegation,
      async handler(context) {
        const principal = context.principal!;
        const body = context.body;
        if (body.delegateId === principal.userId)
          throw fieldProblem('delegateId', 'name someone other than yourself');
        const delegate = await access.grants.userRole(body.delegateId);
        if (!delegate || delegate.disabled)
          throw fieldProblem(
            'delegateId',
            'no enabled user has this id; list users with GET /api/v1/users',
          );
        await assertScopeExists(access.database, body.scope);
        const expiresAt = assertFutureExpiry(body.expiresAt, 'expiresAt', maxDelegationMs);

        // Only what the delegator has outside delegations, at a scope that contains the delegated one.
        const lenders = await access.delegableGrants(
          { userId: principal.userId, role: principal.role },
          new Date(),
        );
        const missing = body.permissions
          .map((permission, index) => ({ permission, index }))
          .filter(
            ({ permission }) =>
              !lenders.some(
                (grant) =>
                  grant.permissions.has(permission) && scopeContains(grant.scope, body.scope),
              ),
          );
        if (missing.length) {
          // A permission the caller has only through a delegation gets its own reason.
          const delegatedToCaller = new Set(
            (await context.access()).grants
              .filter((grant) => grant.source === 'delegation')
              .flatMap((grant) => [...grant.permissions]),
          );
          throw problems.invalidRequest(
            'permissions: you can delegate only permissions you hold at that scope',
            missing.map(({ permission, index }) => ({
              field: `permissions.${index}`,
              message: delegatedToCaller.has(permission)
                ? `${permission} was delegated to you, and delegated permissions cannot be passed on; remove it`
                : `you do not hold ${permission} at this scope; remove it`,
            })),
          );
        }

        const grant = await context.commit(async (transaction) => {
          const created = await access.grants.create(
            {
              userId: body.delegateId,
              role: null,
              permissions: [...new Set(body.permissions)],
              scope: body.scope,
              conditions: body.conditions ?? null,
              source: 'delegation',
              grantedBy: principal.userId,
              justification: body.justification ?? null,
              expiresAt: expiresAt.toISOString(),
            },
            transaction,
          );
          context.resourceId = created.id;
          context.auditNote = grantNote(created);
          return created;
        });
        return { status: 201, body: grant };
      },
    }),

    route({
      method: 'get',
      path: '/access/delegations',
      action: 'access.delegation.list',
      resource: 'grant',
      access: 'signed-in',
      async handler(context) {
        const userId = context.principal!.userId;
        const all = await access.grants.list({ source: 'delegation' });
        return {
          body: {
            given: all.filter((grant) => grant.grantedBy === userId),
            received: all.filter((grant) => grant.userId === userId),
          },
        };
      },
    }),

    route({
      method: 'delete',
      path: '/access/delegations/:id',
      action: 'access.delegation.revoke',
      resource: 'grant',
      access: 'signed-in',
      params: byId,
      async handler(context) {
        const userId = context.principal!.userId;
        const grant = await access.grants.get(context.params.id);
        const mine =
          grant?.source === 'delegation' &&
          !grant.revokedAt &&
          (grant.grantedBy === userId || grant.userId === userId);
        if (!grant || !mine)
          throw problems.notFoundDetail(
            `You have no live delegation ${context.params.id}; list yours with GET /api/v1/access/delegations.`,
          );
        await context.commit(async (transaction) => {
          await access.grants.revoke(
            grant.id,
            userId,
            'ended by delegator or delegate',
            transaction,
          );
          context.auditNote = `revoked ${grantNote(grant)}`;
        });
      },
    }),

    route({
      method: 'get',
      path: '/access/change-requests',
      action: 'access.change.list',
      resource: 'change-request',
      access: 'users:read',
      query: z.object({ status: z.enum(['pending', 'approved', 'rejected']).optional() }).strict(),
      async handler(context) {
        return {
          body: {
            approvalRequired: changes.approvalRequired,
            items: await changes.requests.list(context.query.status),
          },
        };
      },
    }),

    route({
      method: 'post',
      path: '/access/change-requests/:id/approve',
      action: 'access.change.approve',
      resource: 'change-request',
      access: 'users:approve',
      params: byId,
      body: decisionComment,
      async handler(context) {
        return { body: await changes.approve(context, context.params.id, context.body.comment) };
      },
    }),

    route({
      method: 'post',
      path: '/access/change-requests/:id/reject',
      action: 'access.change.reject',
      resource: 'change-request',
      access: 'users:approve',
      params: byId,
      body: decisionComment,
      async handler(context) {
        return { body: await changes.reject(context, context.params.id, context.body.comment) };
      },
    }),
  ];
}

async function liveGrant(access: AccessControl, id: string): Promise<Grant> {
  const grant = await access.grants.get(id);
  if (!grant || grant.revokedAt)
    throw problems.notFoundDetail(
      `No live grant ${id}; list grants with GET /api/v1/access/grants.`,
    );
  return grant;
}

/** An effective grant as `GET /access/me` and `GET /access/users/:id` return it. */
export type EffectiveGrantView = Omit<EffectiveGrant, 'permissions'> & {
  permissions: Permission[];
};

/** The body of `GET /access/me`. */
export interface OwnAccessView {
  userId: string;
  role: Role;
  permissions: Permission[];
  grants: EffectiveGrantView[];
}

function presentGrant(grant: EffectiveGrant): EffectiveGrantView {
  return { ...grant, permissions: [...grant.permissions].sort() };
}
