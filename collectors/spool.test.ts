import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { Spool } from './spool.js';

interface Item {
  n: number;
}

const items = (from: number, count: number): Item[] =>
  Array.from({ length: count }, (_, i) => ({ n: from + i }));

async function segmentFiles(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((name) => name.startsWith('segment-')).sort();
}

describe('durable spool', function () {
  let dir: string;

  beforeEach(async function () {
    dir = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'spool-test-')), 'spool');
  });

  afterEach(async function () {
    await fs.rm(path.dirname(dir), { recursive: true, force: true });
  });

  it('creates private directory and files', async function () {
    const spool = await Spool.open<Item>(dir);
    await spool.append(items(1, 1));
    await spool.close();

    assert.equal((await fs.stat(dir)).mode & 0o777, 0o700);
    const [segment] = await segmentFiles(dir);
    assert.equal((await fs.stat(path.join(dir, segment!))).mode & 0o777, 0o600);
  });

  it('reads records in order, in batches', async function () {
    const spool = await Spool.open<Item>(dir);
    await spool.append(items(1, 5));
    await spool.append(items(6, 5));

    const first = await spool.read(4);
    const second = await spool.read(100);
    assert.deepEqual(
      first.map((entry) => entry.record.n),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      second.map((entry) => entry.record.n),
      [5, 6, 7, 8, 9, 10],
    );
    assert.equal(spool.pending, 10);

    await spool.acknowledge(first);
    assert.equal(spool.pending, 6);
    assert.deepEqual(await spool.read(10), []);
    await spool.close();
  });

  it('keeps pending records across reopen', async function () {
    const before = await Spool.open<Item>(dir);
    await before.append(items(1, 6));
    await before.acknowledge(await before.read(2));
    await before.close();

    const after = await Spool.open<Item>(dir);
    assert.equal(after.pending, 4);
    assert.deepEqual(
      (await after.read(10)).map((entry) => entry.record.n),
      [3, 4, 5, 6],
    );

    await after.append(items(7, 1));
    const [seventh] = await after.read(10);
    assert.equal(seventh!.record.n, 7);
    assert.equal(seventh!.seq, 7);
    await after.close();
  });

  it('rewind re-reads pending records', async function () {
    const spool = await Spool.open<Item>(dir);
    await spool.append(items(1, 3));
    await spool.acknowledge(await spool.read(1));
    await spool.read(10);

    spool.rewind();

    assert.deepEqual(
      (await spool.read(10)).map((entry) => entry.record.n),
      [2, 3],
    );
    await spool.close();
  });

  it('rolls and removes acknowledged segments', async function () {
    const spool = await Spool.open<Item>(dir, { segmentBytes: 200 });
    for (let i = 0; i < 10; i++) await spool.append(items(i * 3 + 1, 3));
    const written = await segmentFiles(dir);
    assert.ok(written.length >= 5, `expected several segments, got ${written.length}`);

    const all = await spool.read(100);
    assert.equal(all.length, 30);
    await spool.acknowledge(all.slice(0, 15));
    const afterHalf = await segmentFiles(dir);
    assert.ok(afterHalf.length < written.length, 'acknowledged segments should be removed');
    assert.ok(afterHalf.length > 1, 'segments with pending records should stay');

    await spool.acknowledge(all.slice(15));
    // The segment being written to stays until the next roll or reopen.
    assert.ok((await segmentFiles(dir)).length <= 1);
    assert.equal(spool.pending, 0);
    await spool.close();

    const reopened = await Spool.open<Item>(dir, { segmentBytes: 200 });
    assert.deepEqual(await segmentFiles(dir), []);
    assert.equal(reopened.pending, 0);
    await reopened.close();
  });

  it('skips and reports torn last line', async function () {
    const before = await Spool.open<Item>(dir);
    await before.append(items(1, 3));
    await before.close();
    const [segment] = await segmentFiles(dir);
    // What a crash in the middle of write(2) leaves: the start of a line, no newline.
    await fs.appendFile(path.join(dir, segment!), '{"seq":4,"record":{"n"');

    const reported: string[] = [];
    const after = await Spool.open<Item>(dir, {
      onCorruptLine: (line) => reported.push(line.reason),
    });

    assert.deepEqual(reported, ['incomplete last line (torn write)']);
    assert.equal(after.corruptLines[0]!.segment, segment);
    assert.equal(after.pending, 3);
    await after.append(items(4, 1));
    assert.deepEqual(
      (await after.read(10)).map((entry) => entry.record.n),
      [1, 2, 3, 4],
    );
    await after.close();
  });

  it('skips damaged middle line', async function () {
    const before = await Spool.open<Item>(dir);
    await before.append(items(1, 3));
    await before.close();
    const [segment] = await segmentFiles(dir);
    const file = path.join(dir, segment!);
    const lines = (await fs.readFile(file, 'utf8')).split('\n');
    lines[1] = 'x'.repeat(lines[1]!.length);
    await fs.writeFile(file, lines.join('\n'));

    const after = await Spool.open<Item>(dir);

    assert.equal(after.corruptLines.length, 1);
    assert.match(after.corruptLines[0]!.reason, /invalid JSON/);
    assert.deepEqual(
      (await after.read(10)).map((entry) => entry.record.n),
      [1, 3],
    );
    await after.close();
  });

  it('rejects damaged committed offset', async function () {
    await fs.mkdir(dir, { recursive: true });
    const expected = /committed\.json has no valid "seq"; expected \{"seq": <integer>\}/;

    for (const damaged of ['{"seq":"seven"}', '{"seq":', 'null']) {
      await fs.writeFile(path.join(dir, 'committed.json'), damaged);
      await assert.rejects(Spool.open<Item>(dir), expected);
    }
  });
});
