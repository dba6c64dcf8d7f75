import { route, type RouteSpec } from '../http/route';
import { commitNamingCreated } from '../vault/routes';
import { parseBody } from '../vault/schemas';
import { newProjectInput, projectParams, restoreInput } from './schemas';
import type { ProjectService } from './service';

/** Projects and their customer-managed keys. Revoke and restore are audited like every write. */
export function projectRoutes(projects: ProjectService): RouteSpec[] {
  return [
    route({
      method: 'get',
      path: '/projects',
      action: 'projects.project.list',
      resource: 'project',
      access: 'projects:read',
      async handler() {
        return { body: { items: projects.list() } };
      },
    }),

    route({
      method: 'get',
      path: '/projects/keys',
      action: 'projects.key.list',
      resource: 'key',
      access: 'keys:read',
      async handler() {
        return {
          body: { items: await projects.listKeys(), generatedAt: new Date().toISOString() },
        };
      },
    }),

    route({
      method: 'post',
      path: '/projects',
      action: 'projects.project.create',
      resource: 'project',
      access: 'projects:create',
      async handler(context) {
        const input = parseBody(newProjectInput, context.request.body);
        const project = await projects.create(
          input,
          context.principal!.userId,
          commitNamingCreated(context),
        );
        return { status: 201, body: project };
      },
    }),

    route({
      method: 'post',
      path: '/projects/:id/key/revoke',
      action: 'projects.key.revoke',
      resource: 'project',
      access: 'projects:update',
      params: projectParams,
      async handler(context) {
        return { body: await projects.revoke(context.params.id, context.commit) };
      },
    }),

    route({
      method: 'post',
      path: '/projects/:id/key/restore',
      action: 'projects.key.restore',
      resource: 'project',
      access: 'projects:update',
      params: projectParams,
      async handler(context) {
        const input = parseBody(restoreInput, context.request.body);
        return { body: await projects.restore(context.params.id, input.pinFile, context.commit) };
      },
    }),
  ];
}
