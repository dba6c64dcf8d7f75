import { route, type RouteContext, type RouteSpec } from '../../http/route';
import type { ApplianceConfig } from '../../platform/config';
import type { Database } from '../../platform/database';
import type { IdentityService } from '../service';
import { normaliseUsername } from '../users';
import { resourceTypes, schemaDefinitions, serviceProviderConfig } from './discovery';
import { parseFilter } from './filter';
import { ScimProvisioning, type AccountChange } from './provisioning';
import { listResponse, presentGroup, presentUser, scimBaseUrl } from './representation';
import { scimRoot } from './media';
import { groupInput, listQuery, patchInput, resourceId, userInput } from './schemas';

type AnyContext = RouteContext<unknown, unknown, unknown>;

/**
 * SCIM 2.0 (RFC 7643, RFC 7644) for provisioning clients: Users, Groups and
 * the discovery resources under /api/v1/scim/v2. Callers authenticate like
 * any API client, normally with an API key that has the users:* permissions.
 */
export function scimRoutes(
  identity: IdentityService,
  config: Pick<ApplianceConfig, 'scim'>,
  database: Database,
): RouteSpec[] {
  const provisioning = new ScimProvisioning(database, identity, config.scim);
  const store = provisioning.store;

  const userBody = async (context: AnyContext, id: string) =>
    presentUser(await provisioning.requireUser(id), store, scimBaseUrl(context.request));
  const groupBody = async (context: AnyContext, id: string) =>
    presentGroup(await provisioning.requireGroup(id), store, scimBaseUrl(context.request));

  return [
    route({
      method: 'get',
      path: `${scimRoot}/ServiceProviderConfig`,
      action: 'identity.scim.config.read',
      resource: 'scim',
      access: 'users:read',
      async handler(context) {
        return { body: serviceProviderConfig(scimBaseUrl(context.request)) };
      },
    }),

    route({
      method: 'get',
      path: `${scimRoot}/ResourceTypes`,
      action: 'identity.scim.config.read',
      resource: 'scim',
      access: 'users:read',
      async handler(context) {
        const items = resourceTypes(scimBaseUrl(context.request));
        return { body: listResponse({ total: items.length, items }, items, 1) };
      },
    }),

    route({
      method: 'get',
      path: `${scimRoot}/Schemas`,
      action: 'identity.scim.config.read',
      resource: 'scim',
      access: 'users:read',
      async handler(context) {
        const items = schemaDefinitions(scimBaseUrl(context.request));
        return { body: listResponse({ total: items.length, items }, items, 1) };
      },
    }),

    route({
      method: 'post',
      path: `${scimRoot}/Users`,
      action: 'identity.scim.user.create',
      resource: 'user',
      access: 'users:create',
      body: userInput,
      async handler(context) {
        const id = await context.commit(async (transaction) => {
          const created = await provisioning.createUser(context.body, transaction);
          context.resourceId = created;
          return created;
        });
        const body = await userBody(context, id);
        context.response.set('Location', body.meta.location);
        return { status: 201, body };
      },
    }),

    route({
      method: 'get',
      path: `${scimRoot}/Users`,
      action: 'identity.scim.user.list',
      resource: 'user',
      access: 'users:read',
      query: listQuery,
      async handler(context) {
        const { startIndex, count } = context.query;
        const filter = parseFilter(context.query.filter, ['userName', 'externalId']);
        // userName is case-insensitive (RFC 7643 section 4.1.1) and stored normalised.
        const where = filter
          ? filter.attribute === 'username'
            ? { column: 'username' as const, value: normaliseUsername(filter.value) }
            : { column: 'external_id' as const, value: filter.value }
          : undefined;

        const page = await store.listUsers(where, startIndex - 1, count);
        const baseUrl = scimBaseUrl(context.request);
        const resources = await Promise.all(
          page.items.map((user) => presentUser(user, store, baseUrl)),
        );
        return { body: listResponse(page, resources, startIndex) };
      },
    }),

    route({
      method: 'get',
      path: `${scimRoot}/Users/:id`,
      action: 'identity.scim.user.read',
      resource: 'user',
      access: 'users:read',
      params: resourceId,
      async handler(context) {
        return { body: await userBody(context, context.params.id) };
      },
    }),

    route({
      method: 'put',
      path: `${scimRoot}/Users/:id`,
      action: 'identity.scim.user.replace',
      resource: 'user',
      access: 'users:update',
      params: resourceId,
      body: userInput,
      async handler(context) {
        await context.commit(async (transaction) => {
          const changes = await provisioning.replaceUser(
            context.params.id,
            context.body,
            transaction,
          );
          context.auditNote = noteOf(changes);
        });
        return { body: await userBody(context, context.params.id) };
      },
    }),

    route({
      method: 'patch',
      path: `${scimRoot}/Users/:id`,
      action: 'identity.scim.user.patch',
      resource: 'user',
      access: 'users:update',
      params: resourceId,
      body: patchInput,
      async handler(context) {
        await context.commit(async (transaction) => {
          const changes = await provisioning.patchUser(
            context.params.id,
            context.body.Operations,
            transaction,
          );
          context.auditNote = noteOf(changes);
        });
        return { body: await userBody(context, context.params.id) };
      },
    }),

    route({
      method: 'delete',
      path: `${scimRoot}/Users/:id`,
      action: 'identity.scim.user.deactivate',
      resource: 'user',
      access: 'users:delete',
      params: resourceId,
      async handler(context) {
        await context.commit(async (transaction) => {
          const changes = await provisioning.deactivateUser(context.params.id, transaction);
          context.auditNote = noteOf(changes);
        });
        return { status: 204 };
      },
    }),

    route({
      method: 'post',
      path: `${scimRoot}/Groups`,
      action: 'identity.scim.group.create',
      resource: 'group',
      access: 'users:create',
      body: groupInput,
      async handler(context) {
        const id = await context.commit(async (transaction) => {
          const created = await provisioning.createGroup(context.body, transaction);
          context.resourceId = created.id;
          context.auditNote = noteOf(created.changes);
          return created.id;
        });
        const body = await groupBody(context, id);
        context.response.set('Location', body.meta.location);
        return { status: 201, body };
      },
    }),

    route({
      method: 'get',
      path: `${scimRoot}/Groups`,
      action: 'identity.scim.group.list',
      resource: 'group',
      access: 'users:read',
      query: listQuery,
      async handler(context) {
        const { startIndex, count } = context.query;
        const filter = parseFilter(context.query.filter, ['displayName', 'externalId']);
        const where = filter
          ? {
              column:
                filter.attribute === 'displayname'
                  ? ('display_name' as const)
                  : ('external_id' as const),
              value: filter.value,
            }
          : undefined;

        const page = await store.listGroups(where, startIndex - 1, count);
        const baseUrl = scimBaseUrl(context.request);
        const resources = await Promise.all(
          page.items.map((group) => presentGroup(group, store, baseUrl)),
        );
        return { body: listResponse(page, resources, startIndex) };
      },
    }),

    route({
      method: 'get',
      path: `${scimRoot}/Groups/:id`,
      action: 'identity.scim.group.read',
      resource: 'group',
      access: 'users:read',
      params: resourceId,
      async handler(context) {
        return { body: await groupBody(context, context.params.id) };
      },
    }),

    route({
      method: 'put',
      path: `${scimRoot}/Groups/:id`,
      action: 'identity.scim.group.replace',
      resource: 'group',
      access: 'users:update',
      params: resourceId,
      body: groupInput,
      async handler(context) {
        await context.commit(async (transaction) => {
          const changes = await provisioning.replaceGroup(
            context.params.id,
            context.body,
            transaction,
          );
          context.auditNote = noteOf(changes);
        });
        return { body: await groupBody(context, context.params.id) };
      },
    }),

    route({
      method: 'patch',
      path: `${scimRoot}/Groups/:id`,
      action: 'identity.scim.group.patch',
      resource: 'group',
      access: 'users:update',
      params: resourceId,
      body: patchInput,
      async handler(context) {
        await context.commit(async (transaction) => {
          const changes = await provisioning.patchGroup(
            context.params.id,
            context.body.Operations,
            transaction,
          );
          context.auditNote = noteOf(changes);
        });
        return { body: await groupBody(context, context.params.id) };
      },
    }),

    route({
      method: 'delete',
      path: `${scimRoot}/Groups/:id`,
      action: 'identity.scim.group.delete',
      resource: 'group',
      access: 'users:delete',
      params: resourceId,
      async handler(context) {
        await context.commit(async (transaction) => {
          const changes = await provisioning.deleteGroup(context.params.id, transaction);
          context.auditNote = noteOf(changes);
        });
        return { status: 204 };
      },
    }),
  ];
}

/** Keeps the account changes (user id, new role, disabled) in the audit record, at most 10 of them. */
function noteOf(changes: readonly AccountChange[]): string | undefined {
  if (!changes.length) return undefined;
  const listed = changes
    .slice(0, 10)
    .map((change) => `${change.userId} role=${change.role} disabled=${change.disabled}`);
  const more = changes.length > 10 ? ` and ${changes.length - 10} more` : '';
  return `accounts changed: ${listed.join(', ')}${more}`;
}
