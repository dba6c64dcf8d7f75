import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { ingestStream, logLineEventId } from '../../collectors/file-collector.js';
import { parseAuthLogLine } from '../../collectors/parsers/auth-log.js';
import { createPipeline } from '../../collectors/pipeline.js';
import type { EcsEvent } from '../../collectors/ecs.js';
import { eventIndexName, eventIndexPattern } from '../../collectors/search/event-template.js';
import { OpenSearchEngine } from '../../collectors/search/opensearch-engine.js';
import { deleteEventIndices, tempDir, uniquePrefix } from '../../collectors/testing.js';
import type { BenchResult } from './result.js';

/**
 * Collector throughput in events per second: an auth log file goes through
 * parse → durable spool (fsync per submit) → bulk `create` into the node.
 * The peer is a plain loader that posts the same events, parsed before its
 * timing starts, with the same batch size and mappings and no spool. Both
 * runs write to fresh indices of the same loopback node and delete them
 * afterwards.
 */

const batchSize = 500;
const drainTimeoutMs = 300_000;
const requestTimeoutMs = 60_000;
const loopbackHosts = new Set(['127.0.0.1', 'localhost', '[::1]']);
/** The generated lines are year-less; this fixes their year so ids and indices repeat from run to run. */
const year = 2026;

/** Writes `count` auth log lines in the classic syslog format, a mix of sshd and sudo messages. */
export async function writeAuthLog(file: string, count: number): Promise<void> {
  const out = fs.createWriteStream(file);
  for (let n = 0; n < count; n++) {
    const second = n % 86_400;
    const stamp = `Mar ${String(10 + Math.floor(n / 86_400)).padStart(2, ' ')} ${String(Math.floor(second / 3600)).padStart(2, '0')}:${String(Math.floor(second / 60) % 60).padStart(2, '0')}:${String(second % 60).padStart(2, '0')}`;
    const ip = `198.51.100.${n % 250}`;
    const pid = 20_000 + (n % 5000);
    const kind = n % 10;
    let text: string;
    if (kind < 5)
      text = `sshd[${pid}]: Failed password for invalid user probe${n % 97} from ${ip} port ${30_000 + (n % 30_000)} ssh2`;
    else if (kind < 7)
      text = `sshd[${pid}]: Invalid user probe${n % 97} from ${ip} port ${30_000 + (n % 30_000)}`;
    else if (kind === 7)
      text = `sshd[${pid}]: Accepted publickey for deploy from 192.0.2.${n % 250} port 52200 ssh2: ED25519 SHA256:bench${n % 13}`;
    else if (kind === 8)
      text = `sudo:   deploy : TTY=pts/${n % 4} ; PWD=/srv/app ; USER=root ; COMMAND=/usr/bin/systemctl restart app${n % 3}`;
    else
      text = `sshd[${pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=${ip}  user=root`;

    if (!out.write(`${stamp} benchhost ${text}\n`))
      await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
}

function assertLoopback(searchUrl: string): void {
  const host = new URL(searchUrl).hostname;
  if (!loopbackHosts.has(host)) {
    throw new Error(
      `searchUrl ${searchUrl} is not a loopback address; the benchmark only runs against 127.0.0.1, localhost or [::1].`,
    );
  }
}

async function postJson(
  url: string,
  method: string,
  body?: string,
  contentType = 'application/json',
): Promise<unknown> {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': contentType },
    body,
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  const json = (await response.json()) as Record<string, unknown>;
  if (!response.ok)
    throw new Error(
      `${method} ${url} returned HTTP ${response.status}: ${JSON.stringify(json).slice(0, 300)}`,
    );
  return json;
}

/** Posts `events` as sequential `_bulk` requests of `create` actions, with no spool and no retries. */
async function plainBulkLoad(
  searchUrl: string,
  prefix: string,
  events: EcsEvent[],
): Promise<{ errors: number }> {
  let errors = 0;
  for (let start = 0; start < events.length; start += batchSize) {
    const lines: string[] = [];
    for (const event of events.slice(start, start + batchSize)) {
      lines.push(
        JSON.stringify({
          create: { _index: eventIndexName(prefix, event['@timestamp']), _id: event.event.id },
        }),
      );
      lines.push(JSON.stringify(event));
    }
    const body = (await postJson(
      `${searchUrl}/_bulk`,
      'POST',
      lines.join('\n') + '\n',
      'application/x-ndjson',
    )) as {
      errors: boolean;
      items: Array<Record<string, { status: number }>>;
    };
    if (body.errors)
      errors += body.items.filter((item) => Object.values(item)[0]!.status >= 300).length;
  }
  return { errors };
}

/** Parses the file the way the collector does, ids included, outside any timing. */
async function preParse(file: string, sourceName: string): Promise<EcsEvent[]> {
  const events: EcsEvent[] = [];
  const lines = (await fsp.readFile(file, 'utf8')).split('\n');
  lines.forEach((raw, index) => {
    const parsed = parseAuthLogLine(raw, { year, filePath: sourceName });
    if (!parsed.ok) return;
    parsed.events.forEach((event, position) => {
      event.event.id = logLineEventId(sourceName, index + 1, raw, position);
      events.push(event);
    });
  });
  return events;
}

async function countDocuments(searchUrl: string, prefix: string): Promise<number> {
  await postJson(`${searchUrl}/${eventIndexPattern(prefix)}/_refresh`, 'POST');
  const body = (await postJson(`${searchUrl}/${eventIndexPattern(prefix)}/_count`, 'GET')) as {
    count: number;
  };
  return body.count;
}

export async function runCollectorBench(options: {
  searchUrl: string;
  events?: number;
}): Promise<BenchResult> {
  assertLoopback(options.searchUrl);
  const searchUrl = options.searchUrl.replace(/\/+$/, '');
  const count = options.events ?? 50_000;
  if (!Number.isInteger(count) || count < 1 || count > 1_000_000) {
    throw new Error(`Invalid events ${count}: use a whole number from 1 to 1000000.`);
  }

  const dir = await tempDir('collector-bench');
  const ourPrefix = uniquePrefix('bench-collector');
  const peerPrefix = uniquePrefix('bench-plain');
  const warmPrefix = uniquePrefix('bench-warmup');
  const engine = new OpenSearchEngine(searchUrl, { requestTimeoutMs });

  try {
    const file = path.join(dir, 'auth.log');
    await writeAuthLog(file, count);
    const events = await preParse(file, file);

    // Both runs get the same template; a short warm-up keeps the JVM's first requests out of either timing.
    for (const prefix of [ourPrefix, peerPrefix, warmPrefix])
      await engine.ensureEventTemplate(prefix);
    await plainBulkLoad(searchUrl, warmPrefix, events.slice(0, Math.min(events.length, 2_000)));

    const pipeline = await createPipeline({
      engine,
      spoolDir: path.join(dir, 'spool'),
      indexPrefix: ourPrefix,
      batchSize,
    });
    const ourStart = process.hrtime.bigint();
    pipeline.start();
    const report = await ingestStream({
      input: fs.createReadStream(file),
      sourceName: file,
      pipeline,
      rejectedFile: path.join(dir, 'rejected-lines.jsonl'),
      year,
    });
    await pipeline.drain(drainTimeoutMs);
    const ourSeconds = Number(process.hrtime.bigint() - ourStart) / 1e9;
    await pipeline.stop();
    const ourStats = pipeline.stats();

    const peerStart = process.hrtime.bigint();
    const peer = await plainBulkLoad(searchUrl, peerPrefix, events);
    const peerSeconds = Number(process.hrtime.bigint() - peerStart) / 1e9;

    const [ourCount, peerCount] = [
      await countDocuments(searchUrl, ourPrefix),
      await countDocuments(searchUrl, peerPrefix),
    ];
    if (ourCount !== report.events || peerCount + peer.errors !== events.length) {
      throw new Error(
        `Benchmark runs disagree: collector indexed ${ourCount} of ${report.events}, plain loader ${peerCount} of ${events.length}.`,
      );
    }

    const ours = report.events / ourSeconds;
    const peerRate = events.length / peerSeconds;
    return {
      name: 'collector: auth log → parse → spool → bulk vs plain bulk of pre-parsed events',
      ours: Math.round(ours),
      peer: Math.round(peerRate),
      ratio: Number((ours / peerRate).toFixed(3)),
      unit: 'events/s',
      details: {
        lines: report.lines,
        events: report.events,
        batchSize,
        oursSeconds: Number(ourSeconds.toFixed(3)),
        peerSeconds: Number(peerSeconds.toFixed(3)),
        oursIncludes:
          'reading and parsing the file, spool append with fsync per 500 events, bulk create, spool acknowledgement',
        peerIncludes: 'bulk create of events parsed before the timing started',
        oursStats: ourStats,
        peerErrors: peer.errors,
        fileBytes: (await fsp.stat(file)).size,
        searchUrl,
      },
    };
  } finally {
    for (const prefix of [ourPrefix, peerPrefix, warmPrefix])
      await deleteEventIndices(searchUrl, prefix).catch(() => undefined);
    await engine.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const searchUrl =
    process.env.BENCH_SEARCH_URL ?? process.env.TEST_SEARCH_URL ?? 'http://127.0.0.1:9250';
  const events =
    process.env.BENCH_EVENTS === undefined ? undefined : Number(process.env.BENCH_EVENTS);
  runCollectorBench({ searchUrl, events }).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (error: unknown) => {
      console.error(
        `collector bench failed: ${error instanceof Error ? error.message : String(error)}`,
      );
      process.exitCode = 1;
    },
  );
}
