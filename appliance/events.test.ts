import assert from 'node:assert/strict';

import { eventIndexPattern } from '../collectors/search/event-template';
import { startTestAppliance, type TestAppliance } from './testing/harness';

describe('event services end to end @integration', function () {
  let test: TestAppliance;

  before(async function () {
    test = await startTestAppliance({ search: true });
  });

  after(async function () {
    await test?.close();
  });

  /** Waits until the audit forwarder and the pipeline have indexed `count` failed sign-ins. */
  async function waitForFailedLogins(count: number) {
    const { engine } = test.appliance.events!;
    const index = eventIndexPattern(test.appliance.config.search.indexPrefix);
    const query = {
      bool: {
        filter: [
          { term: { 'event.action': 'auth.login' } },
          { term: { 'event.outcome': 'failure' } },
        ],
      },
    };
    const deadline = Date.now() + 30_000;

    for (;;) {
      await engine.refresh(index);
      const indexed = await engine.count(index, query);
      if (indexed >= count) return;
      if (Date.now() > deadline)
        throw new Error(`only ${indexed} of ${count} failed logins were indexed within 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  it('raises a brute-force alert from failed API sign-ins', async function () {
    // One guess per account name, as in password spraying, so the per-account
    // lockout (5 failures) never turns the attempts into 429s.
    const client = test.anonymous();
    for (let attempt = 0; attempt < 12; attempt += 1) {
      const response = await client.post('/auth/login', {
        username: `guess-${attempt}`,
        password: 'wrong-password',
      });
      assert.equal(response.status, 401);
    }
    await waitForFailedLogins(12);

    await test.appliance.events!.detections.runOnce();

    const admin = await test.admin();
    const response = await admin.get('/alerts?ruleId=auth.brute_force');
    assert.equal(response.status, 200);
    assert.equal(response.body.items.length, 1);
    const [alert] = response.body.items;
    assert.deepEqual(alert.entity, { field: 'source.ip', value: '127.0.0.1' });
    assert.equal(alert.eventCount, 12);
    assert.equal(alert.severity, 'high');
    assert.equal(alert.status, 'open');

    const events = await admin.get(`/alerts/${alert.id}/events`);
    assert.equal(events.body.total, 12);
    for (const event of events.body.items) {
      assert.equal(event.action, 'auth.login');
      assert.match(event.userName, /^guess-\d+$/);
      assert.equal(event.dataset, 'appliance.audit');
    }
  });
});
