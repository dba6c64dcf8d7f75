import assert from 'node:assert/strict';

import type { EcsEvent } from '../../collectors/ecs';
import { secondsAfter, failedSshLogin, promptRead } from '../detection/test-support';
import type { ApiClient } from '../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../testing/harness';
import type { Alert } from './model';

const base = '2024-12-10T06:55:00.000Z';

describe('alerts API @integration', function () {
  let test: TestAppliance;
  let admin: ApiClient;
  let analyst: ApiClient;
  let auditor: ApiClient;
  let author: ApiClient;
  const slowAttempts = Array.from({ length: 5 }, (_, i) =>
    failedSshLogin('203.0.113.9', secondsAfter(base, i * 10)),
  );
  const floodAttempts = Array.from({ length: 50 }, (_, i) =>
    failedSshLogin('198.51.100.77', secondsAfter(base, 120 + i)),
  );
  const massReads = Array.from({ length: 12 }, (_, i) =>
    promptRead('carol', secondsAfter(base, 600 + i * 5)),
  );

  before(async function () {
    test = await startTestAppliance({
      search: true,
      env: {
        BRUTE_FORCE_THRESHOLD: '5',
        BRUTE_FORCE_WINDOW_SECONDS: '60',
        MASS_READ_THRESHOLD: '10',
      },
    });
    const events = test.appliance.events!;
    await submit([...slowAttempts, ...floodAttempts, ...massReads]);
    await events.detections.runOnce();

    admin = await test.admin();
    analyst = (await test.userWithRole('analyst')).client;
    auditor = (await test.userWithRole('auditor')).client;
    author = (await test.userWithRole('author')).client;
  });

  after(async function () {
    await test?.close();
  });

  async function submit(events: EcsEvent[]) {
    const pipeline = test.appliance.events!.pipeline;
    await pipeline.submit(events);
    await pipeline.drain(20_000);
  }

  async function listAlerts(query = ''): Promise<Alert[]> {
    const response = await admin.get(`/alerts${query}`);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body.items;
  }

  async function alertFor(entity: string): Promise<Alert> {
    const [alert] = await listAlerts(`?entity=${encodeURIComponent(entity)}`);
    assert.ok(alert, `no alert for ${entity}`);
    return alert;
  }

  it('lists every alert, newest lastSeen first', async function () {
    const alerts = await listAlerts();

    assert.deepEqual(
      alerts.map((alert) => alert.entity.value),
      ['carol', '198.51.100.77', '203.0.113.9'],
    );
    assert.deepEqual(
      alerts.map((alert) => alert.ruleName),
      ['Mass read of prompts', 'Brute-force login attempts', 'Brute-force login attempts'],
    );
  });

  it('filters by status, severity, rule, entity and limit', async function () {
    assert.deepEqual(
      (await listAlerts('?severity=critical')).map((alert) => alert.entity.value),
      ['198.51.100.77'],
    );
    assert.deepEqual(
      (await listAlerts('?ruleId=vault.mass_read')).map((alert) => alert.entity.value),
      ['carol'],
    );
    assert.deepEqual(
      (await listAlerts('?entity=203.0.113.9&ruleId=auth.brute_force')).map(
        (alert) => alert.eventCount,
      ),
      [5],
    );
    assert.equal((await listAlerts('?limit=1')).length, 1);
    assert.equal((await listAlerts('?status=open')).length >= 2, true);
    assert.deepEqual(await listAlerts('?entity=192.0.2.1'), []);
  });

  it('rejects a bad filter with 400 naming the field', async function () {
    const cases: Array<[string, string]> = [
      ['?severity=urgent', 'query.severity'],
      ['?status=resolved', 'query.status'],
      ['?ruleId=auth.unknown', 'query.ruleId'],
      ['?limit=0', 'query.limit'],
      ['?limit=201', 'query.limit'],
      ['?limit=ten', 'query.limit'],
    ];
    for (const [query, field] of cases) {
      const response = await admin.get(`/alerts${query}`);
      assert.equal(response.status, 400, query);
      assert.equal(
        response.headers['content-type']?.toString().split(';')[0],
        'application/problem+json',
      );
      assert.deepEqual(
        response.body.errors.map((error: { field: string }) => error.field),
        [field],
        query,
      );
    }
  });

  it('rejects an unknown query parameter', async function () {
    const response = await admin.get('/alerts?sevrity=high');
    assert.equal(response.status, 400);
    assert.match(response.body.detail, /sevrity/);
  });

  it('reads one alert and 404s an unknown id', async function () {
    const listed = await alertFor('203.0.113.9');

    const response = await admin.get(`/alerts/${listed.id}`);
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, listed);
    assert.equal(listed.summary, '5 failed logins from 203.0.113.9 in 40 seconds');

    const unknown = await admin.get('/alerts/00000000-0000-4000-8000-000000000000');
    assert.equal(unknown.status, 404);
    const malformed = await admin.get('/alerts/not-a-uuid');
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.errors[0].field, 'params.id');
  });

  it('returns the triggering events of an alert', async function () {
    const alert = await alertFor('203.0.113.9');

    const response = await analyst.get(`/alerts/${alert.id}/events`);

    assert.equal(response.status, 200);
    assert.equal(response.body.total, alert.eventCount);
    assert.deepEqual(
      response.body.items.map((event: { id: string }) => event.id),
      slowAttempts.map((event) => event.event.id),
    );
    for (const event of response.body.items) {
      assert.equal(event.sourceIp, '203.0.113.9');
      assert.equal(event.outcome, 'failure');
      assert.equal(event.action, 'ssh_login');
      assert.equal(event.dataset, 'system.auth');
      assert.ok(event.timestamp >= alert.firstSeen, `${event.timestamp} is before firstSeen`);
      assert.ok(event.timestamp <= alert.lastSeen, `${event.timestamp} is after lastSeen`);
      assert.match(event.index, /-events-2024\.12\.10$/);
    }
  });

  it('pages the events of an alert with limit', async function () {
    const alert = await alertFor('198.51.100.77');

    const response = await admin.get(`/alerts/${alert.id}/events?limit=2`);

    assert.equal(response.status, 200);
    assert.equal(response.body.total, 50);
    assert.equal(response.body.items.length, 2);
    assert.equal(
      (await admin.get(`/alerts/${alert.id}/events?limit=501`)).body.errors[0].field,
      'query.limit',
    );
  });

  it('lets an analyst set the status', async function () {
    const alert = await alertFor('carol');

    const response = await analyst.patch(`/alerts/${alert.id}`, { status: 'acknowledged' });

    assert.equal(response.status, 200);
    assert.equal(response.body.status, 'acknowledged');
    assert.ok(response.body.updatedAt > alert.updatedAt);
    assert.equal((await admin.get(`/alerts/${alert.id}`)).body.status, 'acknowledged');
    assert.deepEqual(
      (await listAlerts('?status=acknowledged')).map((listed) => listed.id),
      [alert.id],
    );
  });

  it('rejects a bad status and an unknown alert', async function () {
    const alert = await alertFor('203.0.113.9');

    const bad = await analyst.patch(`/alerts/${alert.id}`, { status: 'resolved' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.errors[0].field, 'status');

    const unknown = await analyst.patch('/alerts/00000000-0000-4000-8000-000000000000', {
      status: 'closed',
    });
    assert.equal(unknown.status, 404);
    assert.equal((await admin.get(`/alerts/${alert.id}`)).body.status, 'open');
  });

  it('lets an auditor read but not update', async function () {
    const alert = await alertFor('203.0.113.9');

    assert.equal((await auditor.get('/alerts')).status, 200);
    assert.equal((await auditor.get(`/alerts/${alert.id}/events`)).status, 200);
    const patch = await auditor.patch(`/alerts/${alert.id}`, { status: 'closed' });
    assert.equal(patch.status, 403);
    assert.equal((await admin.get(`/alerts/${alert.id}`)).body.status, 'open');
  });

  it('denies alerts to an author', async function () {
    const alert = await alertFor('203.0.113.9');

    assert.equal((await author.get('/alerts')).status, 403);
    assert.equal((await author.get(`/alerts/${alert.id}`)).status, 403);
    assert.equal((await author.get(`/alerts/${alert.id}/events`)).status, 403);
  });

  it('denies alerts without a session', async function () {
    assert.equal((await test.anonymous().get('/alerts')).status, 401);
  });
});
