import { z } from 'zod';

import { problems } from '../http/problem';
import { route, type RouteContext, type RouteSpec } from '../http/route';
import type { AuditedCommit, KeyOperator } from './rotation';
import type { KeyInventory } from './service';

const rotationParams = z.object({ id: z.uuid({ error: 'must be a rotation id (UUID)' }) });

/** Body of PUT /keys/master/minimum-version and PUT /projects/:id/key/minimum-version. */
export const minimumVersionBody = z.strictObject({
  minimumVersion: z
    .number({ error: 'must be a whole number of at least 1' })
    .int({ error: 'must be a whole number of at least 1' })
    .min(1, { error: 'must be a whole number of at least 1' }),
});

/**
 * Builds the key inventory routes and the master key rotation routes. A
 * rotation or rewrap returns 202 as soon as its record is stored, and the
 * rewrap runs in the background. GET /keys/rotations/:id reports its progress.
 */
export function keyRoutes(inventory: KeyInventory): RouteSpec[] {
  const rotation = inventory.rotation;
  const operatorOf = (username: string): KeyOperator => ({ trigger: 'api', actor: username });

  return [
    route({
      method: 'get',
      path: '/keys',
      action: 'keys.inventory.list',
      resource: 'key',
      access: 'keys:read',
      async handler() {
        return { body: { items: await inventory.list(), generatedAt: new Date().toISOString() } };
      },
    }),

    route({
      method: 'get',
      path: '/keys/master/versions',
      action: 'keys.master.list',
      resource: 'master-key',
      access: 'keys:read',
      async handler() {
        return { body: { items: await rotation.versions() } };
      },
    }),

    route({
      method: 'post',
      path: '/keys/rotate',
      action: 'keys.master.rotate',
      resource: 'master-key',
      access: 'keys:execute',
      async handler(context) {
        const record = await rotation.rotate(
          operatorOf(context.principal!.username),
          commitNamingRotation(context),
        );
        rotation.startRewrap(record.id);
        return { status: 202, body: record };
      },
    }),

    route({
      method: 'post',
      path: '/keys/rewrap',
      action: 'keys.master.rewrap',
      resource: 'master-key',
      access: 'keys:execute',
      async handler(context) {
        const record = await rotation.rewrapToActive(
          operatorOf(context.principal!.username),
          commitNamingRotation(context),
        );
        rotation.startRewrap(record.id);
        return { status: 202, body: record };
      },
    }),

    route({
      method: 'put',
      path: '/keys/master/minimum-version',
      action: 'keys.master.retire',
      resource: 'master-key',
      access: 'keys:execute',
      body: minimumVersionBody,
      async handler(context) {
        const versions = await context.commit((transaction) =>
          rotation.setMinimumVersion(context.body.minimumVersion, transaction),
        );
        return { body: { minimumVersion: context.body.minimumVersion, items: versions } };
      },
    }),

    route({
      method: 'get',
      path: '/keys/rotations',
      action: 'keys.rotation.list',
      resource: 'key-rotation',
      access: 'keys:read',
      async handler() {
        return { body: { items: await rotation.list() } };
      },
    }),

    route({
      method: 'get',
      path: '/keys/rotations/:id',
      action: 'keys.rotation.read',
      resource: 'key-rotation',
      access: 'keys:read',
      params: rotationParams,
      async handler(context) {
        const record = await rotation.get(context.params.id);
        if (!record) throw problems.notFound(`The key rotation ${context.params.id}`);
        return { body: record };
      },
    }),

    route({
      method: 'post',
      path: '/keys/rotations/:id/resume',
      action: 'keys.rotation.resume',
      resource: 'key-rotation',
      access: 'keys:execute',
      params: rotationParams,
      async handler(context) {
        const record = await context.commit((transaction) =>
          rotation.reopen(context.params.id, transaction),
        );
        inventory.startRewrap(record);
        return { status: 202, body: record };
      },
    }),
  ];
}

/** Wraps context.commit so that the audit record names the rotation the work created. */
function commitNamingRotation(context: RouteContext<unknown, unknown, unknown>): AuditedCommit {
  return (work) =>
    context.commit(async (transaction) => {
      const result = await work(transaction);
      context.resourceId = (result as { id: string }).id;
      return result;
    });
}
