import assert from 'node:assert/strict';

import { conditionsSchema, failedCondition, type RequestAttributes } from './conditions';

const base: RequestAttributes = {
  sourceIp: '127.0.0.1',
  at: new Date('2026-12-04T10:30:00Z'), // a Friday
  mfaVerified: false,
  deviceTrusted: false,
};
const at = (iso: string) => ({ ...base, at: new Date(iso) });
const check = (conditions: unknown, attributes: RequestAttributes = base) =>
  failedCondition(conditionsSchema.parse(conditions), attributes);

describe('grant conditions', function () {
  it('matches IPv4, IPv6 and IPv4-mapped source addresses against ranges', function () {
    assert.equal(check({ sourceIps: ['127.0.0.0/8'] }), undefined);
    assert.equal(
      check({ sourceIps: ['127.0.0.0/8'] }, { ...base, sourceIp: '::ffff:127.0.0.1' }),
      undefined,
    );
    assert.equal(check({ sourceIps: ['::1/128'] }, { ...base, sourceIp: '::1' }), undefined);
    assert.match(
      check({ sourceIps: ['10.0.0.0/8', '192.168.0.0/16'] })!,
      /only from 10\.0\.0\.0\/8, 192\.168\.0\.0\/16/,
    );
    assert.match(
      check({ sourceIps: ['10.0.0.0/8'] }, { ...base, sourceIp: 'unknown' })!,
      /only from/,
    );
  });

  it('applies a schedule in its time zone, across midnight and by weekday', function () {
    const officeHours = {
      schedule: { days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '08:00', to: '18:00' },
    };
    assert.equal(check(officeHours), undefined);
    assert.match(
      check(officeHours, at('2026-12-05T10:30:00Z'))!,
      /on mon, tue, wed, thu, fri from 08:00 to 18:00 UTC/,
    );
    assert.match(check(officeHours, at('2026-12-04T18:00:00Z'))!, /from 08:00/);

    // 10:30 UTC is 19:30 in Tokyo: outside 08:00-18:00 there.
    assert.match(
      check({ schedule: { from: '08:00', to: '18:00', timeZone: 'Asia/Tokyo' } })!,
      /Asia\/Tokyo/,
    );

    // A Friday-night shift from 22:00 to 06:00 still applies at 03:00 on Saturday.
    const nightShift = { schedule: { days: ['fri'], from: '22:00', to: '06:00' } };
    assert.equal(check(nightShift, at('2026-12-05T03:00:00Z')), undefined);
    assert.equal(check(nightShift, at('2026-12-04T23:00:00Z')), undefined);
    assert.ok(check(nightShift, at('2026-12-04T03:00:00Z')));
  });

  it('requires MFA and a trusted device when asked', function () {
    assert.match(check({ requireMfa: true })!, /multi-factor/);
    assert.equal(check({ requireMfa: true }, { ...base, mfaVerified: true }), undefined);
    assert.match(check({ requireTrustedDevice: true })!, /trusted device/);
    assert.equal(
      check({ requireTrustedDevice: true }, { ...base, deviceTrusted: true }),
      undefined,
    );
  });

  it('limits data by classification label only when the label is known', function () {
    const upToInternal = { maxClassification: 'internal' };
    assert.equal(check(upToInternal), undefined);
    assert.equal(check(upToInternal, { ...base, classification: 'public' }), undefined);
    assert.match(
      check(upToInternal, { ...base, classification: 'restricted' })!,
      /up to "internal"/,
    );
  });

  it('rejects malformed conditions naming the field', function () {
    const issues = (value: unknown) =>
      conditionsSchema
        .safeParse(value)
        .error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    assert.deepEqual(issues({ sourceIps: ['10.0.0.0/33'] }), [
      'sourceIps.0: must be an address range such as 10.0.0.0/8 or 2001:db8::/32',
    ]);
    assert.deepEqual(issues({ schedule: { from: '8am', to: '18:00' } }), [
      'schedule.from: must be a 24-hour time such as 08:00',
    ]);
    assert.deepEqual(
      issues({ schedule: { from: '08:00', to: '18:00', timeZone: 'Mars/Olympus' } }),
      ['schedule.timeZone: must be an IANA time zone such as UTC or Europe/Berlin'],
    );
    assert.equal(conditionsSchema.safeParse({ ipRange: '10.0.0.0/8' }).success, false);
  });
});
