import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ingestStream } from '../../collectors/file-collector';
import { createPipeline } from '../../collectors/pipeline';
import { withIngestTimestamp } from './ingest-time';
import { openDetectionFixture, type DetectionFixture } from './test-support';

// A real internet-facing sshd log from December (loghub), read in place and never copied.
const loghubFile = '/work/shared/data/loghub/OpenSSH_2k.log';

describe('brute force on a replayed sshd log @integration', function () {
  let fixture: DetectionFixture;
  let spoolDir: string;

  before(function () {
    if (!fs.existsSync(loghubFile)) this.skip();
  });

  beforeEach(async function () {
    fixture = await openDetectionFixture();
    spoolDir = fs.mkdtempSync(path.join(os.tmpdir(), 'detection-spool-'));
  });

  afterEach(async function () {
    await fixture?.close();
    fs.rmSync(spoolDir, { recursive: true, force: true });
  });

  async function replay() {
    const pipeline = await createPipeline({
      engine: withIngestTimestamp(fixture.engine),
      spoolDir,
      indexPrefix: fixture.indexPrefix,
    });
    pipeline.start();
    await ingestStream({
      input: fs.createReadStream(loghubFile),
      sourceName: 'OpenSSH_2k.log',
      pipeline,
      rejectedFile: path.join(spoolDir, 'rejected-lines.jsonl'),
      now: new Date('2026-12-31T12:00:00Z'),
    });
    await pipeline.drain(60_000);
    await pipeline.stop();
  }

  it('alerts on the bursts of Dec 10 when replayed today', async function () {
    await replay();
    const scheduler = fixture.scheduler();

    await scheduler.runOnce();

    const alerts = await fixture.store.list({ ruleId: 'auth.brute_force', limit: 200 });
    assert.ok(alerts.some((alert) => alert.entity.value === '183.62.140.253'));
    for (const alert of alerts) {
      assert.ok(alert.eventCount >= 10, `${alert.entity.value} has ${alert.eventCount} events`);
      assert.match(alert.firstSeen, /^2026-12-10T/);
      const stored = await fixture.store.get(alert.id);
      assert.equal(
        await fixture.engine.count(stored!.eventQuery.index, stored!.eventQuery.query),
        alert.eventCount,
      );
    }

    // Replaying the same file indexes nothing new, so the alerts stay as they were.
    await replay();
    await scheduler.runOnce();
    assert.deepEqual(await fixture.store.list({ ruleId: 'auth.brute_force', limit: 200 }), alerts);
  });
});
