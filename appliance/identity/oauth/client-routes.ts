import { z } from 'zod';

import { problems } from '../../http/problem';
import { route, type RouteSpec } from '../../http/route';
import { assertGrantable, grantName, permissionList } from './grants';
import type { OAuthService } from './service';

const newClient = z.object({
  name: grantName,
  permissions: permissionList,
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});

const clientId = z.object({ id: z.uuid() });

/**
 * Builds the admin routes that register OAuth clients (secret shown once),
 * list them, rotate a secret and disable a client. A client acts for the
 * admin who registered it, with at most the permissions it was given.
 */
export function oauthClientRoutes(oauth: OAuthService): RouteSpec[] {
  const notFound = (id: string, kind: string) =>
    problems.notFoundDetail(
      `There is no ${kind}OAuth client ${id}; list clients with GET /api/v1/oauth/clients.`,
    );

  return [
    route({
      method: 'post',
      path: '/oauth/clients',
      action: 'auth.oauth.client.create',
      resource: 'oauth-client',
      access: 'users:create',
      body: newClient,
      async handler(context) {
        const principal = context.principal!;
        const { name, permissions } = context.body;
        assertGrantable(principal, await context.access(), permissions);
        const expiresAt = checkedExpiry(context.body.expiresAt);

        // The id is set inside the commit, so the audit record names the new client.
        const created = await context.commit(async (transaction) => {
          const result = await oauth.clients.create(
            principal.userId,
            { name, permissions, expiresAt },
            transaction,
          );
          context.resourceId = result.summary.clientId;
          return result;
        });
        return { status: 201, body: { ...created.summary, clientSecret: created.secret } };
      },
    }),

    route({
      method: 'get',
      path: '/oauth/clients',
      action: 'auth.oauth.client.list',
      resource: 'oauth-client',
      access: 'users:read',
      async handler() {
        return { body: { items: await oauth.clients.list() } };
      },
    }),

    route({
      method: 'post',
      path: '/oauth/clients/:id/secret',
      action: 'auth.oauth.client.rotate',
      resource: 'oauth-client',
      access: 'users:update',
      params: clientId,
      async handler(context) {
        // Thrown inside the commit, so a miss rolls back and is audited as a failure.
        const rotated = await context.commit(async (transaction) => {
          const result = await oauth.clients.rotateSecret(context.params.id, transaction);
          if (!result) throw notFound(context.params.id, 'enabled ');
          return result;
        });
        return { body: { ...rotated.summary, clientSecret: rotated.secret } };
      },
    }),

    route({
      method: 'post',
      path: '/oauth/clients/:id/disable',
      action: 'auth.oauth.client.disable',
      resource: 'oauth-client',
      access: 'users:update',
      params: clientId,
      async handler(context) {
        const disabled = await context.commit(async (transaction) => {
          const result = await oauth.clients.disable(context.params.id, transaction);
          if (!result) throw notFound(context.params.id, '');
          return result;
        });
        return { body: disabled };
      },
    }),
  ];
}

/** An optional expiry must lie in the future. */
function checkedExpiry(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;

  const expiresAt = new Date(text);
  if (expiresAt.getTime() <= Date.now())
    throw problems.invalidRequest('expiresAt: must be in the future', [
      { field: 'expiresAt', message: 'must be in the future; omit it for a client without expiry' },
    ]);
  return expiresAt;
}
