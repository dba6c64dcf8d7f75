import assert from 'node:assert/strict';

import {
  secondsAfter,
  openDetectionFixture,
  promptRead,
  type DetectionFixture,
} from './test-support';

const burstStart = '2026-11-20T14:00:00.000Z';
const hourSeconds = 3600;
const settings = { massReadThreshold: 10, massReadWindowSeconds: 600, massReadBaselineFactor: 5 };

/** `count` reads spread evenly over `spanSeconds` from `start`. */
function reads(userName: string, start: string, count: number, spanSeconds: number) {
  return Array.from({ length: count }, (_, i) =>
    promptRead(userName, secondsAfter(start, (i * spanSeconds) / count)),
  );
}

/** History spans the 7 days before the burst, less its last hour, so no history read shares a window with the burst. */
const historyStart = secondsAfter(burstStart, -7 * 24 * hourSeconds).toISOString();
const historyHours = 7 * 24 - 1;

/** 4 reads an hour: about 0.67 per 10-minute window, so 5 × usual stays below the threshold of 10. */
function quietHistory(userName: string) {
  return reads(userName, historyStart, historyHours * 4, historyHours * hourSeconds);
}

/** 4 reads every 10 minutes: 5 × usual is a limit of 19.8 reads per window. */
function busyHistory(userName: string) {
  return reads(userName, historyStart, historyHours * 6 * 4, historyHours * hourSeconds);
}

describe('vault.mass_read detection @integration', function () {
  let fixture: DetectionFixture;

  beforeEach(async function () {
    fixture = await openDetectionFixture();
  });

  afterEach(async function () {
    await fixture.close();
  });

  async function alertsFor(userName: string) {
    return fixture.store.list({ ruleId: 'vault.mass_read', entity: userName, limit: 200 });
  }

  it('alerts on a user with a quiet baseline above the threshold', async function () {
    await fixture.indexEvents([...quietHistory('carol'), ...reads('carol', burstStart, 12, 300)]);

    await fixture.scheduler(settings).runOnce();

    const alerts = await alertsFor('carol');
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0].severity, 'medium');
    assert.equal(alerts[0].eventCount, 12);
    assert.equal(alerts[0].firstSeen, burstStart);
    assert.deepEqual(alerts[0].entity, { field: 'user.name', value: 'carol' });
    assert.match(
      alerts[0].summary,
      /^carol read 12 prompts in \d+ minutes, more than the limit of 10 per 10 minutes$/,
    );
  });

  it('stays quiet at the threshold itself', async function () {
    await fixture.indexEvents(reads('erin', burstStart, 10, 300));

    await fixture.scheduler(settings).runOnce();

    assert.deepEqual(await alertsFor('erin'), []);
  });

  it('raises no alert for the same burst from a busy user', async function () {
    await fixture.indexEvents([...busyHistory('dave'), ...reads('dave', burstStart, 12, 300)]);

    await fixture.scheduler(settings).runOnce();

    assert.deepEqual(await alertsFor('dave'), []);
  });

  it('alerts on a busy user far above the usual rate', async function () {
    await fixture.indexEvents([...busyHistory('frank'), ...reads('frank', burstStart, 45, 300)]);

    await fixture.scheduler(settings).runOnce();

    const alerts = await alertsFor('frank');
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0].severity, 'high');
    assert.match(
      alerts[0].summary,
      /^frank read 45 prompts in 5 minutes, more than the limit of 19 per 10 minutes$/,
    );
  });

  it('ignores failed reads', async function () {
    const failed = Array.from({ length: 20 }, (_, i) =>
      promptRead('grace', secondsAfter(burstStart, i), 'failure'),
    );
    await fixture.indexEvents(failed);

    await fixture.scheduler(settings).runOnce();

    assert.deepEqual(await alertsFor('grace'), []);
  });
});
