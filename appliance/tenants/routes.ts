import { route, type RouteContext, type RouteSpec } from '../http/route';
import type { AuditedCommit } from '../keys/rotation';
import { minimumVersionBody } from '../keys/routes';
import type { Database } from '../platform/database';
import { setTenantMinimumVersion } from './key-retirement';
import type { TenantKeyRotation } from './key-rotation';
import { commitNamingCreated } from '../vault/routes';
import { parseBody } from '../vault/schemas';
import { newProjectInput, projectParams, restoreInput } from './schemas';
import type { ProjectService } from './service';

/**
 * Projects and their customer-managed keys. Revoke, restore and rotate are
 * audited like every write. A rotation returns 202 once its record is
 * stored, and GET /keys/rotations/:id reports the rewrap's progress.
 * Setting the minimum version retires the project's older key versions.
 */
export function projectRoutes(
  database: Database,
  projects: ProjectService,
  rotation: TenantKeyRotation,
): RouteSpec[] {
  return [
    route({
      method: 'get',
      path: '/projects',
      action: 'projects.project.list',
      resource: 'project',
      access: 'projects:read',
      async handler() {
        return { body: { items: await projects.withCurrentKeys(projects.list()) } };
      },
    }),

    route({
      method: 'get',
      path: '/projects/keys',
      action: 'projects.key.list',
      resource: 'key',
      access: 'keys:read',
      async handler() {
        // The tenant rows of GET /keys, kept under this path for existing clients.
        // NOTE: nextRotation is null here even when TENANT_KEY_ROTATION_CRON is set, because the schedule lives in the key inventory.
        const items = await projects.listKeys();
        return { body: { items, generatedAt: new Date().toISOString() } };
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
        const [current] = await projects.withCurrentKeys([project]);
        return { status: 201, body: current };
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

    route({
      method: 'post',
      path: '/projects/:id/key/rotate',
      action: 'projects.key.rotate',
      resource: 'project',
      access: 'keys:execute',
      params: projectParams,
      async handler(context) {
        const record = await rotation.rotate(
          context.params.id,
          { trigger: 'api', actor: context.principal!.username },
          commitNamingRotation(context),
        );
        rotation.startRewrap(record.id);
        return { status: 202, body: record };
      },
    }),

    route({
      method: 'put',
      path: '/projects/:id/key/minimum-version',
      action: 'projects.key.retire',
      resource: 'project',
      access: 'keys:execute',
      params: projectParams,
      body: minimumVersionBody,
      async handler(context) {
        const { minimumVersion } = context.body;
        context.auditNote = `minimum version ${minimumVersion}`;
        const versions = await context.commit((transaction) =>
          setTenantMinimumVersion(database, context.params.id, minimumVersion, transaction),
        );
        return { body: { projectId: context.params.id, minimumVersion, items: versions } };
      },
    }),
  ];
}

/** Wraps context.commit so that the audit record names the rotated project and the rotation. */
function commitNamingRotation(
  context: RouteContext<{ id: string }, unknown, unknown>,
): AuditedCommit {
  return (work) =>
    context.commit(async (transaction) => {
      const result = await work(transaction);
      context.auditNote = `rotation ${(result as { id: string }).id}`;
      return result;
    });
}
