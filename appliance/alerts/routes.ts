import { z } from 'zod';

import type { SearchEngine } from '../../collectors/search/engine';
import { problems } from '../http/problem';
import { route, type RouteSpec } from '../http/route';
import { fetchAlertEvents } from './alert-events';
import { alertStatuses, ruleIds, severities } from './model';
import { toAlert, type AlertStore } from './store';

const alertId = z.object({ id: z.uuid() });

const listQuery = z.strictObject({
  status: z.enum(alertStatuses).optional(),
  severity: z.enum(severities).optional(),
  ruleId: z.enum(ruleIds).optional(),
  entity: z.string().min(1).max(256).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

const eventsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

/** Alert triage: list, read, fetch triggering events, set status. */
export function alertRoutes(store: AlertStore, engine: SearchEngine): RouteSpec[] {
  return [
    route({
      method: 'get',
      path: '/alerts',
      action: 'alerts.alert.list',
      resource: 'alert',
      access: 'alerts:read',
      query: listQuery,
      async handler(context) {
        return { body: { items: await store.list(context.query) } };
      },
    }),

    route({
      method: 'get',
      path: '/alerts/:id',
      action: 'alerts.alert.read',
      resource: 'alert',
      access: 'alerts:read',
      params: alertId,
      async handler(context) {
        const alert = await store.get(context.params.id);
        if (!alert) throw problems.notFound(`Alert ${context.params.id}`);
        return { body: toAlert(alert) };
      },
    }),

    route({
      method: 'get',
      path: '/alerts/:id/events',
      action: 'alerts.alert.events.read',
      resource: 'alert',
      access: 'alerts:read',
      params: alertId,
      query: eventsQuery,
      async handler(context) {
        const alert = await store.get(context.params.id);
        if (!alert) throw problems.notFound(`Alert ${context.params.id}`);
        return { body: await fetchAlertEvents(engine, alert, context.query.limit) };
      },
    }),

    route({
      method: 'patch',
      path: '/alerts/:id',
      action: 'alerts.alert.update',
      resource: 'alert',
      access: 'alerts:update',
      params: alertId,
      body: z.strictObject({ status: z.enum(alertStatuses) }),
      async handler(context) {
        // Thrown inside the transaction, so the audit trail records the
        // request as failed rather than as a successful update.
        const alert = await context.commit(async (transaction) => {
          const updated = await store.setStatus(
            context.params.id,
            context.body.status,
            transaction,
          );
          if (!updated) throw problems.notFound(`Alert ${context.params.id}`);
          return updated;
        });
        return { body: alert };
      },
    }),
  ];
}
