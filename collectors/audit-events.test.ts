import assert from 'node:assert/strict';

import type { AuditRecord } from '../appliance/audit/record.js';
import { auditRecordToEcs } from './audit-events.js';

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    seq: 42,
    time: '2026-12-04T10:15:30.123Z',
    requestId: 'req-7f3a',
    actor: { userId: 'u-1', username: 'alice', role: 'admin' },
    action: 'auth.login',
    resource: { type: 'session', id: 's-9' },
    outcome: 'success',
    sourceIp: '192.0.2.44',
    prevHash: 'a'.repeat(64),
    hash: 'b'.repeat(64),
    ...overrides,
  };
}

describe('audit record to ECS', function () {
  it('maps login to authentication event', function () {
    const event = auditRecordToEcs(record());

    assert.equal(event['@timestamp'], '2026-12-04T10:15:30.123Z');
    assert.equal(event.event.id, 'audit-42');
    assert.equal(event.event.dataset, 'appliance.audit');
    assert.equal(event.event.action, 'auth.login');
    assert.equal(event.event.outcome, 'success');
    assert.deepEqual(event.event.category, ['authentication']);
    assert.equal(event.event.reason, undefined);
    assert.deepEqual(event.user, { name: 'alice', id: 'u-1', roles: ['admin'] });
    assert.deepEqual(event.source, { ip: '192.0.2.44' });
    assert.equal(event.http?.request?.id, 'req-7f3a');
    assert.deepEqual(event.appliance?.resource, { type: 'session', id: 's-9' });
    assert.equal(event.appliance?.audit?.hash, 'b'.repeat(64));
  });

  it('maps denied to failure and keeps the reason', function () {
    const withReason = auditRecordToEcs(
      record({
        action: 'vault.prompt.read',
        outcome: 'denied',
        reason: 'role viewer lacks vault.read',
      }),
    );
    const withoutReason = auditRecordToEcs(record({ outcome: 'denied' }));

    assert.equal(withReason.event.outcome, 'failure');
    assert.equal(withReason.event.reason, 'role viewer lacks vault.read');
    assert.equal(withReason.appliance?.audit?.outcome, 'denied');
    assert.equal(withoutReason.event.reason, 'denied');
    assert.equal(
      auditRecordToEcs(record({ outcome: 'failure', reason: 'wrong password' })).event.outcome,
      'failure',
    );
  });

  it('omits absent fields and non-IP sources', function () {
    const event = auditRecordToEcs(
      record({
        actor: {},
        resource: { type: 'audit_chain' },
        sourceIp: 'unknown',
        requestId: '',
        action: 'other.thing',
      }),
    );

    assert.equal(event.user, undefined);
    assert.deepEqual(event.appliance?.resource, { type: 'audit_chain' });
    assert.deepEqual(event.source, { address: 'unknown' });
    assert.equal(event.http, undefined);
    assert.equal(event.event.category, undefined);
  });

  it('unwraps an IPv4-mapped IPv6 address', function () {
    assert.deepEqual(auditRecordToEcs(record({ sourceIp: '::ffff:127.0.0.1' })).source, {
      ip: '127.0.0.1',
    });
    assert.deepEqual(auditRecordToEcs(record({ sourceIp: '::1' })).source, { ip: '::1' });
  });

  it('rejects an invalid time', function () {
    assert.throws(
      () => auditRecordToEcs(record({ time: 'not a time' })),
      /Audit record 42 has an invalid time "not a time"; expected ISO 8601/,
    );
  });
});
