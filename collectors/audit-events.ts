import { isIP } from 'node:net';

import type { AuditRecord } from '../appliance/audit/record.js';
import type { EcsEvent } from './ecs.js';

/**
 * Maps appliance audit records to ECS events with `event.dataset`
 * `appliance.audit`, so detections query them beside the system logs.
 * The id `audit-<seq>` is stable, so forwarding a record twice indexes it
 * once.
 */

/**
 * ECS categorisation of actions that differ from their domain's: reading
 * one's own session and changing a password are not authentication attempts.
 */
const actionCategories: Record<string, { category: string[]; type: string[] }> = {
  'auth.session.read': { category: ['session'], type: ['info'] },
  'auth.password.change': { category: ['iam'], type: ['user', 'change'] },
};

/** ECS categorisation by the first segment of the action (`auth.login` → `auth`). */
const categories: Record<string, { category: string[]; type: string[] }> = {
  auth: { category: ['authentication'], type: ['info'] },
  identity: { category: ['iam'], type: ['user'] },
  audit: { category: ['configuration'], type: ['access'] },
  vault: { category: ['database'], type: ['access'] },
};

export function auditRecordToEcs(record: AuditRecord): EcsEvent {
  const time = new Date(record.time);
  if (Number.isNaN(time.getTime())) {
    throw new Error(
      `Audit record ${record.seq} has an invalid time ${JSON.stringify(record.time)}; expected ISO 8601.`,
    );
  }

  const event: EcsEvent = {
    '@timestamp': time.toISOString(),
    event: {
      kind: 'event',
      id: `audit-${record.seq}`,
      dataset: 'appliance.audit',
      module: 'appliance',
      action: record.action,
      // ECS has no "denied", so a denied request maps to failure and event.reason gives the cause.
      outcome: record.outcome === 'success' ? 'success' : 'failure',
      sequence: record.seq,
    },
    appliance: {
      resource: {
        type: record.resource.type,
        ...(record.resource.id !== undefined ? { id: record.resource.id } : {}),
      },
      audit: { hash: record.hash, prev_hash: record.prevHash, outcome: record.outcome },
    },
  };

  const categorisation =
    actionCategories[record.action] ?? categories[record.action.split('.')[0]!];
  if (categorisation) {
    event.event.category = [...categorisation.category];
    event.event.type = [...categorisation.type];
  }

  const reason = record.reason ?? (record.outcome === 'denied' ? 'denied' : undefined);
  if (reason !== undefined) event.event.reason = reason;

  const user: NonNullable<EcsEvent['user']> = {};
  if (record.actor.username !== undefined) user.name = record.actor.username;
  if (record.actor.userId !== undefined) user.id = record.actor.userId;
  if (record.actor.role !== undefined) user.roles = [record.actor.role];
  if (Object.keys(user).length > 0) event.user = user;

  // source.ip is mapped as ip, so anything else would get the whole document refused.
  const sourceIp = record.sourceIp.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  if (isIP(sourceIp)) event.source = { ip: sourceIp };
  else if (record.sourceIp !== '') event.source = { address: record.sourceIp };

  if (record.requestId !== '') event.http = { request: { id: record.requestId } };
  return event;
}
