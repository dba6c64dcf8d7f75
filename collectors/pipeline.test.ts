import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { testSearchUrl } from '../appliance/testing/harness.js';
import { searchNode, type SearchNode } from '../scripts/lib/search-node.js';
import type { EcsEvent } from './ecs.js';
import { ingestStream } from './file-collector.js';
import {
  assertShippable,
  backoffDelay,
  createPipeline,
  rejectedEventsFileName,
  type Pipeline,
} from './pipeline.js';
import type { SearchEngine } from './search/engine.js';
import { eventIndexPattern } from './search/event-template.js';
import { OpenSearchEngine } from './search/opensearch-engine.js';
import {
  deleteEventIndices,
  freePorts,
  sshFailureEvent,
  tempDir,
  uniquePrefix,
  waitFor,
} from './testing.js';

const fixture = fileURLToPath(new URL('./fixtures/auth.log', import.meta.url));
const fixtureNow = new Date('2027-01-01T00:30:00Z');
/** Fixture: 28 lines, 4 malformed, one "message repeated 2 times" line. */
const fixtureEvents = 25;

/** Returns every document id in the event indices of `prefix`, up to 10000. */
async function indexedIds(engine: SearchEngine, prefix: string): Promise<string[]> {
  await engine.refresh(eventIndexPattern(prefix));
  const result = await engine.search(eventIndexPattern(prefix), {
    size: 10_000,
    _source: false,
    query: { match_all: {} },
  });
  assert.equal(result.hits.length, result.total, 'more documents than one search page');
  return result.hits.map((hit) => hit.id);
}

async function ingestFixture(pipeline: Pipeline, dir: string) {
  return ingestStream({
    input: fs.createReadStream(fixture),
    sourceName: '/var/log/auth.log',
    pipeline,
    rejectedFile: path.join(dir, 'rejected-lines.jsonl'),
    now: fixtureNow,
  });
}

describe('collector pipeline (no engine needed)', function () {
  it('rejects events without id or timestamp', async function () {
    const dir = await tempDir('pipeline-validate');
    try {
      const pipeline = await createPipeline({
        engine: new OpenSearchEngine(testSearchUrl),
        spoolDir: dir,
        indexPrefix: 'unused',
      });
      const good = sshFailureEvent('valid', 1);
      const noId = { ...good, event: { ...good.event, id: undefined } };
      const badTime = { ...good, '@timestamp': 'yesterday' };

      await assert.rejects(
        pipeline.submit([good, noId]),
        /events\[1\]\.event\.id is missing or invalid; set a deterministic string id/,
      );
      await assert.rejects(
        pipeline.submit([badTime]),
        /events\[0\]\["@timestamp"\] is missing or invalid; set an ISO 8601 date-time/,
      );

      assert.equal(pipeline.stats().pending, 0);
      assert.equal(pipeline.stats().spooled, 0);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects an invalid index prefix', async function () {
    await assert.rejects(
      createPipeline({
        engine: new OpenSearchEngine(testSearchUrl),
        spoolDir: '/nonexistent',
        indexPrefix: 'Bad Prefix',
      }),
      /Invalid index prefix "Bad Prefix": use lowercase letters/,
    );
    assert.throws(
      () => assertShippable(null as unknown as EcsEvent, 3),
      /events\[3\] is not an object/,
    );
  });

  it('backs off exponentially with jitter and a cap', function () {
    assert.equal(
      backoffDelay(0, 100, 1000, () => 0),
      50,
    );
    assert.equal(
      backoffDelay(0, 100, 1000, () => 1),
      100,
    );
    assert.equal(
      backoffDelay(3, 100, 1000, () => 1),
      800,
    );
    assert.equal(
      backoffDelay(10, 100, 1000, () => 1),
      1000,
    );
    assert.equal(
      backoffDelay(60, 100, 1000, () => 0.5),
      750,
    );
  });
});

describe('collector pipeline @integration', function () {
  let dir: string;
  let prefix: string;
  let engine: OpenSearchEngine;
  const pipelines: Pipeline[] = [];

  async function pipelineFor(
    options: { spoolDir?: string; batchSize?: number } = {},
  ): Promise<Pipeline> {
    const pipeline = await createPipeline({
      engine,
      spoolDir: options.spoolDir ?? path.join(dir, 'spool'),
      indexPrefix: prefix,
      batchSize: options.batchSize,
      retry: { initialMs: 50, maxMs: 500 },
    });
    pipelines.push(pipeline);
    return pipeline;
  }

  beforeEach(async function () {
    dir = await tempDir('pipeline-it');
    prefix = uniquePrefix('test-collect');
    engine = new OpenSearchEngine(testSearchUrl, { requestTimeoutMs: 10_000 });
  });

  afterEach(async function () {
    for (const pipeline of pipelines.splice(0)) await pipeline.stop();
    await deleteEventIndices(testSearchUrl, prefix);
    await engine.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('indexes the fixture once, searchable', async function () {
    const pipeline = await pipelineFor();
    pipeline.start();

    const report = await ingestFixture(pipeline, dir);
    await pipeline.drain(30_000);

    assert.deepEqual(report, {
      lines: 28,
      events: fixtureEvents,
      rejected: 4,
      rejectedFile: path.join(dir, 'rejected-lines.jsonl'),
    });
    const ids = await indexedIds(engine, prefix);
    assert.equal(ids.length, fixtureEvents);
    assert.equal(new Set(ids).size, fixtureEvents);
    assert.deepEqual(pipeline.stats(), {
      spooled: fixtureEvents,
      indexed: fixtureEvents,
      duplicates: 0,
      rejected: 0,
      retries: 0,
      pending: 0,
    });

    const failedDeploy = await engine.count(eventIndexPattern(prefix), {
      bool: {
        filter: [
          { term: { 'event.action': 'ssh_login' } },
          { term: { 'event.outcome': 'failure' } },
          { term: { 'user.name': 'deploy' } },
          { term: { 'source.ip': '203.0.113.7' } },
        ],
      },
    });
    // One "Failed password" line and one "message repeated 2 times" line.
    assert.equal(failedDeploy, 3);
    assert.equal(
      await engine.count(eventIndexPattern(prefix), { term: { 'source.ip': '203.0.113.0/24' } }),
      9,
    );
    assert.equal(
      await engine.count(eventIndexPattern(prefix), { term: { 'event.outcome': 'success' } }),
      8,
    );

    // The year-less stamps span new year, so the events land in two daily indices.
    const byIndex = await engine.search(eventIndexPattern(prefix), {
      size: 0,
      aggs: { days: { terms: { field: '_index' } } },
    });
    const days = (
      byIndex.aggregations!.days as { buckets: Array<{ key: string; doc_count: number }> }
    ).buckets;
    assert.deepEqual(days.map((bucket) => [bucket.key, bucket.doc_count]).sort(), [
      [`${prefix}-events-2026.12.31`, 10],
      [`${prefix}-events-2027.01.01`, 15],
    ]);

    const rejected = (await fsp.readFile(report.rejectedFile!, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.deepEqual(
      rejected.map((entry) => [entry.line, entry.source]),
      [
        [18, '/var/log/auth.log'],
        [21, '/var/log/auth.log'],
        [24, '/var/log/auth.log'],
        [27, '/var/log/auth.log'],
      ],
    );
    assert.equal(rejected[0].text, 'this line has no syslog header');
    assert.match(rejected[0].reason, /not a syslog line/);
  });

  it('replay indexes nothing twice', async function () {
    const first = await pipelineFor();
    first.start();
    await ingestFixture(first, dir);
    await first.drain(30_000);

    // A second run with a spool of its own, as a second `appliancectl ingest` would have.
    const second = await pipelineFor({ spoolDir: path.join(dir, 'spool-replay') });
    second.start();
    const report = await ingestFixture(second, dir);
    await second.drain(30_000);

    assert.equal(report.events, fixtureEvents);
    assert.equal(second.stats().indexed, 0);
    assert.equal(second.stats().duplicates, fixtureEvents);
    assert.equal((await indexedIds(engine, prefix)).length, fixtureEvents);
  });

  it('restart ships spool leftovers', async function () {
    const spoolDir = path.join(dir, 'spool');
    const first = await pipelineFor({ spoolDir, batchSize: 10 });
    await first.submit(Array.from({ length: 300 }, (_, n) => sshFailureEvent('leftover', n)));

    // stop() right after start(): the loop finishes the batch it began and no more.
    first.start();
    await first.stop();
    const leftovers = first.stats().pending;
    assert.equal(leftovers, 290);

    const second = await pipelineFor({ spoolDir, batchSize: 10 });
    assert.equal(second.stats().pending, 290);
    second.start();
    await second.drain(30_000);

    assert.equal(second.stats().indexed, 290);
    assert.equal(second.stats().pending, 0);
    const ids = await indexedIds(engine, prefix);
    assert.equal(ids.length, 300);
    assert.equal(new Set(ids).size, 300);
  });

  it('mapping conflict goes to rejected file', async function () {
    const pipeline = await pipelineFor({ batchSize: 20 });
    const events = Array.from({ length: 50 }, (_, n) => sshFailureEvent('mapping', n));
    // source.ip is mapped as ip by the template, so this document cannot be indexed.
    events[7] = { ...events[7]!, source: { ip: 'not-an-address' } };

    pipeline.start();
    await pipeline.submit(events);
    await pipeline.drain(30_000);

    const stats = pipeline.stats();
    assert.equal(stats.indexed, 49);
    assert.equal(stats.rejected, 1);
    assert.equal(stats.pending, 0);

    const ids = await indexedIds(engine, prefix);
    assert.equal(ids.length, 49);
    assert.ok(!ids.includes('mapping-7'));

    const rejectedFile = path.join(dir, 'spool', rejectedEventsFileName);
    const [line, extra] = (await fsp.readFile(rejectedFile, 'utf8')).trim().split('\n');
    assert.equal(extra, undefined);
    const entry = JSON.parse(line!);
    assert.equal(entry.id, 'mapping-7');
    assert.equal(entry.status, 400);
    assert.match(entry.reason, /mapper_parsing_exception/);
    assert.equal(entry.event.source.ip, 'not-an-address');
  });
});

describe('collector pipeline across a search node outage @integration', function () {
  let dir: string;
  let node: SearchNode;
  let engine: OpenSearchEngine;
  let pipeline: Pipeline | undefined;

  before(async function () {
    this.timeout(180_000);
    dir = await tempDir('pipeline-outage');
    const [port, transportPort] = await freePorts(2);
    node = searchNode({
      port: port!,
      transportPort,
      dataDir: path.join(dir, 'node'),
      heap: '512m',
    });
    await node.start();
    engine = new OpenSearchEngine(node.url, { requestTimeoutMs: 5_000 });
  });

  after(async function () {
    this.timeout(120_000);
    await pipeline?.stop();
    await engine?.close();
    await node?.stop();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('delivers exactly once across node outage', async function () {
    this.timeout(180_000);
    const prefix = uniquePrefix('test-outage');
    pipeline = await createPipeline({
      engine,
      spoolDir: path.join(dir, 'spool'),
      indexPrefix: prefix,
      batchSize: 50,
      retry: { initialMs: 100, maxMs: 1_000 },
    });
    pipeline.start();
    const shipping = pipeline;

    // Producer: 40 submits of 50 events, 100 ms apart, over about 4 s.
    const total = 2_000;
    const produced = (async () => {
      for (let chunk = 0; chunk < total / 50; chunk++) {
        await shipping.submit(
          Array.from({ length: 50 }, (_, i) => sshFailureEvent('outage', chunk * 50 + i)),
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    await waitFor(
      () => shipping.stats().indexed >= 200,
      30_000,
      'the first events were not indexed',
    );
    await node.stop();
    const indexedWhileUp = shipping.stats().indexed;

    await produced;
    await waitFor(
      () => shipping.stats().retries >= 2,
      30_000,
      'the pipeline did not retry while the node was down',
    );
    assert.ok(
      shipping.stats().pending > 0,
      'events should wait in the spool while the node is down',
    );
    assert.ok(indexedWhileUp < total, 'the outage should start before every event is indexed');

    await node.start();
    await shipping.drain(60_000);

    const stats = shipping.stats();
    assert.equal(stats.spooled, total);
    assert.equal(stats.pending, 0);
    assert.equal(stats.rejected, 0);
    // A bulk request the node took just before it stopped comes back as 409 duplicates on resend.
    assert.equal(stats.indexed + stats.duplicates, total);

    await engine.refresh(eventIndexPattern(prefix));
    const result = await engine.search(eventIndexPattern(prefix), {
      size: 10_000,
      _source: false,
      query: { match_all: {} },
    });
    assert.equal(result.total, total);
    const counts = new Map<string, number>();
    for (const hit of result.hits) counts.set(hit.id, (counts.get(hit.id) ?? 0) + 1);
    const expected = Array.from({ length: total }, (_, n) => `outage-${n}`);
    assert.deepEqual(
      expected.filter((id) => counts.get(id) !== 1),
      [],
    );
    assert.equal(counts.size, total);
  });
});
