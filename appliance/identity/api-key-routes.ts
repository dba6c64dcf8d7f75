import { z } from 'zod';

import { problems } from '../http/problem';
import { route, type RouteSpec } from '../http/route';
import { maxApiKeyLifetimeMs } from './api-keys';
import { permissionNames, type Permission } from './permissions';
import type { IdentityService } from './service';

const newKey = z.object({
  name: z.string().trim().min(1).max(64),
  permissions: z
    .array(z.enum(permissionNames as [Permission, ...Permission[]]))
    .min(1)
    .max(permissionNames.length)
    .refine((list) => new Set(list).size === list.length, 'must not repeat a permission'),
  /** Limits the key to the prompts of these projects. */
  projectIds: z
    .array(z.uuid('must be a project id as returned by GET /api/v1/projects'))
    .min(1)
    .max(64)
    .optional(),
  expiresAt: z.iso.datetime({ offset: true }),
});

const keyId = z.object({ id: z.uuid() });

/** Builds the routes that create (shown once), list and revoke the caller's own API keys. */
export function apiKeyRoutes(identity: IdentityService): RouteSpec[] {
  return [
    route({
      method: 'post',
      path: '/api-keys',
      action: 'auth.apikey.create',
      resource: 'api-key',
      access: 'signed-in',
      body: newKey,
      async handler(context) {
        const principal = context.principal!;
        const { name, permissions, projectIds } = context.body;
        const expiresAt = checkedExpiry(context.body.expiresAt);
        await assertProjectsExist(identity, projectIds);

        // A key contains at most what its owner has now, at some scope. At use, the
        // owner's grants still decide scope and conditions.
        const view = await context.access();
        const beyondRole = permissions
          .map((permission, index) => ({ permission, index }))
          .filter(
            ({ permission }) => !view.grants.some((grant) => grant.permissions.has(permission)),
          );
        if (beyondRole.length) {
          throw problems.invalidRequest(
            `permissions: a key may hold only permissions your role "${principal.role}" or your grants give`,
            beyondRole.map(({ permission, index }) => ({
              field: `permissions.${index}`,
              message: `${permission} is not granted to you; remove it`,
            })),
          );
        }

        // The id is set inside the commit, so the audit record names the new key.
        const created = await context.commit(async (transaction) => {
          const result = await identity.apiKeys.create(
            principal.userId,
            { name, permissions, projectIds, expiresAt },
            transaction,
          );
          context.resourceId = result.summary.id;
          return result;
        });
        return { status: 201, body: { ...created.summary, key: created.key } };
      },
    }),

    route({
      method: 'get',
      path: '/api-keys',
      action: 'auth.apikey.list',
      resource: 'api-key',
      access: 'signed-in',
      async handler(context) {
        return { body: { items: await identity.apiKeys.list(context.principal!.userId) } };
      },
    }),

    route({
      method: 'delete',
      path: '/api-keys/:id',
      action: 'auth.apikey.revoke',
      resource: 'api-key',
      access: 'signed-in',
      params: keyId,
      async handler(context) {
        const revoked = await context.commit((transaction) =>
          identity.apiKeys.revoke(context.principal!.userId, context.params.id, transaction),
        );
        if (!revoked)
          throw problems.notFoundDetail(
            `Your account has no API key ${context.params.id}; list yours with GET /api/v1/api-keys.`,
          );
      },
    }),
  ];
}

/** Throws a 400 naming each entry of `projectIds` that names no project. */
async function assertProjectsExist(
  identity: IdentityService,
  projectIds?: string[],
): Promise<void> {
  if (!projectIds) return;
  const unknown = new Set(await identity.apiKeys.unknownProjects(projectIds));
  const errors = projectIds
    .map((id, index) => ({ id, index }))
    .filter(({ id }) => unknown.has(id))
    .map(({ id, index }) => ({
      field: `projectIds.${index}`,
      message: `no project has the id ${id}; list projects with GET /api/v1/projects`,
    }));
  if (errors.length) throw problems.invalidRequest(`projectIds: ${errors[0].message}`, errors);
}

/** The expiry must be in the future and at most a year away. */
function checkedExpiry(text: string): Date {
  const expiresAt = new Date(text);
  const now = Date.now();
  const fail = (message: string) =>
    problems.invalidRequest(`expiresAt: ${message}`, [{ field: 'expiresAt', message }]);

  if (expiresAt.getTime() <= now) throw fail('must be in the future');
  if (expiresAt.getTime() > now + maxApiKeyLifetimeMs)
    throw fail('must be at most 365 days from now; create a new key when it lapses');
  return expiresAt;
}
