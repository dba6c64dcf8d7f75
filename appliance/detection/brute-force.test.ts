import assert from 'node:assert/strict';

import { checkpointKey } from './scheduler';
import {
  secondsAfter,
  failedSshLogin,
  openDetectionFixture,
  type DetectionFixture,
} from './test-support';
import { readState } from '../platform/state';

/** Replayed events from an old log: event time long before the wall time they are ingested at. */
const base = '2024-12-10T06:55:00.000Z';
const settings = { bruteForceThreshold: 5, bruteForceWindowSeconds: 60 };

function logins(sourceIp: string, offsetsSeconds: number[]) {
  return offsetsSeconds.map((offset) => failedSshLogin(sourceIp, secondsAfter(base, offset)));
}

describe('auth.brute_force detection @integration', function () {
  let fixture: DetectionFixture;

  beforeEach(async function () {
    fixture = await openDetectionFixture();
  });

  afterEach(async function () {
    await fixture.close();
  });

  async function alertsFor(entity: string) {
    return fixture.store.list({ ruleId: 'auth.brute_force', entity, limit: 200 });
  }

  it('raises no alert one attempt below the threshold', async function () {
    await fixture.indexEvents(logins('203.0.113.9', [0, 5, 10, 15]));

    const reports = await fixture.scheduler(settings).runOnce();

    assert.deepEqual(await alertsFor('203.0.113.9'), []);
    assert.equal(reports.find((report) => report.ruleId === 'auth.brute_force')?.entities, 1);
  });

  it('raises one alert at the threshold, across two runs', async function () {
    const scheduler = fixture.scheduler(settings);
    await fixture.indexEvents(logins('203.0.113.9', [0, 5, 10, 15]));
    await scheduler.runOnce();
    assert.ok(await readState(fixture.database, checkpointKey('auth.brute_force')));

    await fixture.indexEvents(logins('203.0.113.9', [20]));
    await scheduler.runOnce();

    const alerts = await alertsFor('203.0.113.9');
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0].eventCount, 5);
    assert.equal(alerts[0].severity, 'high');
    assert.equal(alerts[0].status, 'open');
    assert.deepEqual(alerts[0].entity, { field: 'source.ip', value: '203.0.113.9' });
    assert.equal(alerts[0].firstSeen, base);
    assert.equal(alerts[0].lastSeen, secondsAfter(base, 20).toISOString());
    assert.equal(alerts[0].summary, '5 failed logins from 203.0.113.9 in 20 seconds');
  });

  it('slides the window across minute boundaries', async function () {
    // 40 s, 45 s and 50 s fall in one minute and 65 s, 70 s in the next.
    await fixture.indexEvents(logins('198.51.100.7', [40, 45, 50, 65, 70]));
    // Never 5 in 60 s: the most in one window is 4.
    await fixture.indexEvents(logins('198.51.100.8', [0, 20, 40, 60, 70]));

    await fixture.scheduler(settings).runOnce();

    assert.equal((await alertsFor('198.51.100.7')).length, 1);
    assert.deepEqual(await alertsFor('198.51.100.8'), []);
  });

  it('groups a continuing burst into one alert', async function () {
    const scheduler = fixture.scheduler(settings);
    await fixture.indexEvents(logins('192.0.2.44', [0, 2, 4, 6, 8]));
    await scheduler.runOnce();
    const [first] = await alertsFor('192.0.2.44');

    // Starts 40 s after the last event, within the 60 s window, but a
    // window of its own: a new burst that continues the first.
    await fixture.indexEvents(logins('192.0.2.44', [48, 50, 52, 54, 56, 58]));
    await scheduler.runOnce();

    const alerts = await alertsFor('192.0.2.44');
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0].id, first.id);
    assert.equal(alerts[0].eventCount, 11);
    assert.equal(alerts[0].firstSeen, base);
    assert.equal(alerts[0].lastSeen, secondsAfter(base, 58).toISOString());
    assert.ok(alerts[0].updatedAt > first.updatedAt);
    assert.equal(alerts[0].createdAt, first.createdAt);
  });

  it('changes nothing when the same events are scanned again', async function () {
    const scheduler = fixture.scheduler(settings);
    await fixture.indexEvents(logins('192.0.2.45', [0, 1, 2, 3, 4, 5]));
    await scheduler.runOnce();
    const [before] = await alertsFor('192.0.2.45');

    // The checkpoint looks back over the settle time, so this run reads the same events again.
    const reports = await scheduler.runOnce();

    assert.deepEqual(await alertsFor('192.0.2.45'), [before]);
    assert.equal(reports.find((report) => report.ruleId === 'auth.brute_force')?.extended, 0);
    assert.equal(reports.find((report) => report.ruleId === 'auth.brute_force')?.created, 0);
  });

  it('opens a new alert for a burst well after the window', async function () {
    const scheduler = fixture.scheduler(settings);
    await fixture.indexEvents(logins('192.0.2.46', [0, 1, 2, 3, 4, 600, 601, 602, 603, 604]));
    await scheduler.runOnce();

    const alerts = await alertsFor('192.0.2.46');
    assert.equal(alerts.length, 2);
    assert.deepEqual(
      alerts.map((alert) => alert.eventCount),
      [5, 5],
    );
    assert.equal(alerts[0].firstSeen, secondsAfter(base, 600).toISOString());
  });

  it('opens a new alert when the continued burst follows a closed one', async function () {
    const scheduler = fixture.scheduler(settings);
    await fixture.indexEvents(logins('192.0.2.47', [0, 1, 2, 3, 4]));
    await scheduler.runOnce();
    const [closed] = await alertsFor('192.0.2.47');
    await fixture.database.write((transaction) =>
      fixture.store.setStatus(closed.id, 'closed', transaction),
    );

    await fixture.indexEvents(logins('192.0.2.47', [10, 11, 12, 13, 14]));
    await scheduler.runOnce();

    const alerts = await alertsFor('192.0.2.47');
    assert.equal(alerts.length, 2);
    const reopened = alerts.find((alert) => alert.id !== closed.id)!;
    assert.equal(reopened.status, 'open');
    assert.equal(reopened.eventCount, 5);
    assert.equal(reopened.firstSeen, secondsAfter(base, 10).toISOString());
    assert.equal(alerts.find((alert) => alert.id === closed.id)?.eventCount, 5);
  });

  it('raises one alert per source address', async function () {
    await fixture.indexEvents([
      ...logins('203.0.113.20', [0, 1, 2, 3, 4]),
      ...logins('203.0.113.21', [0, 1, 2, 3, 4, 5]),
    ]);

    await fixture.scheduler(settings).runOnce();

    const alerts = await fixture.store.list({ ruleId: 'auth.brute_force', limit: 200 });
    assert.deepEqual(alerts.map((alert) => alert.entity.value).sort(), [
      '203.0.113.20',
      '203.0.113.21',
    ]);
    assert.equal(alerts.find((alert) => alert.entity.value === '203.0.113.21')?.eventCount, 6);
  });

  it('rates a window of ten times the threshold critical', async function () {
    const offsets = Array.from({ length: 50 }, (_, i) => i);
    await fixture.indexEvents(logins('203.0.113.30', offsets));

    await fixture.scheduler(settings).runOnce();

    const [alert] = await alertsFor('203.0.113.30');
    assert.equal(alert.severity, 'critical');
    assert.equal(alert.eventCount, 50);
  });

  it('stores a query that selects exactly the triggering events', async function () {
    const burst = logins('203.0.113.40', [100, 101, 102, 103, 104]);
    const before = logins('203.0.113.40', [0]);
    const other = logins('203.0.113.41', [101]);
    const success = { ...failedSshLogin('203.0.113.40', secondsAfter(base, 102)) };
    success.event = { ...success.event, outcome: 'success' };
    await fixture.indexEvents([...burst, ...before, ...other, success]);

    await fixture.scheduler(settings).runOnce();

    const [listed] = await alertsFor('203.0.113.40');
    const stored = await fixture.store.get(listed.id);
    const result = await fixture.engine.search(stored!.eventQuery.index, {
      query: stored!.eventQuery.query,
      size: 100,
    });
    assert.deepEqual(
      result.hits.map((hit) => hit.id).sort(),
      burst.map((event) => event.event.id).sort(),
    );
  });
});
