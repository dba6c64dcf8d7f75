import { route, type RouteSpec } from '../http/route';
import type { KeyInventory } from './service';

/** Builds the read-only key inventory route for the console and auditors. */
export function keyRoutes(inventory: KeyInventory): RouteSpec[] {
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
  ];
}
