import { route, type RouteSpec } from '../http/route';
import type { AuditTrail } from './trail';

/** Audit-chain verification over HTTP; the CLI's verify-audit runs the same check. */
export function auditRoutes(trail: AuditTrail): RouteSpec[] {
  return [
    route({
      method: 'get',
      path: '/audit/verify',
      action: 'audit.chain.verify',
      resource: 'audit_chain',
      access: 'audit:execute',
      async handler() {
        return { body: await trail.verify() };
      },
    }),
  ];
}
