import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { testSearchUrl } from '../appliance/testing/harness.js';
import { ingestStream, logLineEventId, maxLineLength } from './file-collector.js';
import { createPipeline, type Pipeline } from './pipeline.js';
import { OpenSearchEngine } from './search/opensearch-engine.js';
import { Spool } from './spool.js';
import type { EcsEvent } from './ecs.js';
import { tempDir } from './testing.js';

const fixture = fileURLToPath(new URL('./fixtures/auth.log', import.meta.url));
const now = new Date('2027-01-01T00:30:00Z');

/**
 * These tests never start the pipeline, so nothing reaches the search
 * engine: they read back what ingestStream put into the real spool.
 */
describe('file collector', function () {
  let dir: string;
  let pipeline: Pipeline;

  beforeEach(async function () {
    dir = await tempDir('file-collector');
    pipeline = await createPipeline({
      engine: new OpenSearchEngine(testSearchUrl),
      spoolDir: path.join(dir, 'spool'),
      indexPrefix: 'unused',
    });
  });

  afterEach(async function () {
    await pipeline.stop();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  async function spooledEvents(): Promise<EcsEvent[]> {
    await pipeline.stop();
    const spool = await Spool.open<EcsEvent>(path.join(dir, 'spool'));
    const entries = await spool.read(10_000);
    await spool.close();
    return entries.map((entry) => entry.record);
  }

  it('spools events and reports malformed lines', async function () {
    const rejectedFile = path.join(dir, 'rejected.jsonl');
    const report = await ingestStream({
      input: fs.createReadStream(fixture),
      sourceName: 'auth.log',
      pipeline,
      rejectedFile,
      now,
    });

    assert.deepEqual(report, { lines: 28, events: 25, rejected: 4, rejectedFile });
    const events = await spooledEvents();
    assert.equal(events.length, 25);
    assert.equal(new Set(events.map((event) => event.event.id)).size, 25);

    const first = events[0]!;
    assert.equal(first.event.id, logLineEventId('auth.log', 1, first.event.original!, 0));
    assert.equal(first.log?.file?.path, 'auth.log');

    const rejected = (await fsp.readFile(rejectedFile, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.deepEqual(Object.keys(rejected[0]).sort(), ['line', 'reason', 'source', 'text']);
    assert.deepEqual(
      rejected.map((entry) => entry.line),
      [18, 21, 24, 27],
    );
  });

  it('repeated line ids are distinct, stable', async function () {
    const lines = (await fsp.readFile(fixture, 'utf8')).split('\n');
    const repeated = lines.find((line) => line.includes('message repeated 2 times'))!;
    const run = async () => {
      const input = new PassThrough();
      input.end(`${repeated}\n`);
      await ingestStream({
        input,
        sourceName: 'stdin',
        pipeline,
        rejectedFile: path.join(dir, 'r.jsonl'),
        now,
      });
    };

    await run();
    await run();

    const ids = (await spooledEvents()).map((event) => event.event.id);
    assert.equal(ids.length, 4);
    assert.equal(ids[0], ids[2]);
    assert.equal(ids[1], ids[3]);
    assert.notEqual(ids[0], ids[1]);
  });

  it('reads CRLF split across stream chunks', async function () {
    const text = await fsp.readFile(fixture, 'utf8');
    const input = new PassThrough();
    const ingesting = ingestStream({
      input,
      sourceName: 'auth.log',
      pipeline,
      rejectedFile: path.join(dir, 'r.jsonl'),
      now,
    });

    // Seven-byte writes cut most lines and several \r\n pairs in two.
    for (let offset = 0; offset < text.length; offset += 7) {
      input.write(text.slice(offset, offset + 7));
      await new Promise((resolve) => setImmediate(resolve));
    }
    input.end();
    const report = await ingesting;

    assert.deepEqual(
      { lines: report.lines, events: report.events, rejected: report.rejected },
      { lines: 28, events: 25, rejected: 4 },
    );
    const fromFile = await ingestStream({
      input: fs.createReadStream(fixture),
      sourceName: 'auth.log',
      pipeline,
      rejectedFile: path.join(dir, 'r2.jsonl'),
      now,
    });
    assert.equal(fromFile.events, 25);
    const events = await spooledEvents();
    assert.deepEqual(
      events.slice(0, 25).map((event) => event.event.id),
      events.slice(25).map((event) => event.event.id),
    );
    assert.ok(events.every((event) => !event.event.original!.includes('\r')));
  });

  it('rejects over-long line, skips blank ones', async function () {
    const input = new PassThrough();
    const rejectedFile = path.join(dir, 'rejected.jsonl');
    const long = `Jan  1 00:00:00 bastion sshd[1]: ${'A'.repeat(maxLineLength)}`;
    input.end(`\n   \n${long}\nJan  1 00:00:01 bastion sshd[1]: Invalid user x from 192.0.2.1\n`);

    const report = await ingestStream({ input, sourceName: 'stdin', pipeline, rejectedFile, now });

    assert.deepEqual(report, { lines: 4, events: 1, rejected: 1, rejectedFile });
    const [entry] = (await fsp.readFile(rejectedFile, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.equal(entry.line, 3);
    assert.match(entry.reason, /line longer than 16384 characters/);
    assert.equal(entry.text.length, maxLineLength);
  });

  it('creates no rejected file when clean', async function () {
    const input = new PassThrough();
    const rejectedFile = path.join(dir, 'rejected.jsonl');
    input.end('Jan  1 00:00:01 bastion sshd[1]: Invalid user x from 192.0.2.1\n');

    const report = await ingestStream({ input, sourceName: 'stdin', pipeline, rejectedFile, now });

    assert.deepEqual(report, { lines: 1, events: 1, rejected: 0 });
    assert.equal(fs.existsSync(rejectedFile), false);
  });
});
