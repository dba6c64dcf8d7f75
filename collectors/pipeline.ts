import fs from 'node:fs/promises';
import path from 'node:path';

import { logger } from '../appliance/platform/logger.js';
import type { EcsEvent } from './ecs.js';
import type { BulkCreateItem, SearchEngine } from './search/engine.js';
import { assertIndexPrefix, eventIndexName } from './search/event-template.js';
import { Spool, type SpoolEntry } from './spool.js';

/**
 * Ships ECS events from a durable spool to the search engine.
 *
 * The spool delivers at least once and the index stores exactly once.
 * Every document is sent with op `create` under its deterministic
 * `event.id`. When a batch is sent again after a crash or a lost response,
 * the documents that got through come back as 409, which counts as
 * delivered. 429, 5xx and connection errors are retried with capped
 * exponential backoff and jitter. Any other per-item 4xx, such as a mapping
 * conflict, is written to `<spoolDir>/rejected-events.jsonl` with the
 * reason and does not hold back the rest of the batch.
 */

export interface PipelineOptions {
  engine: SearchEngine;
  /** Durable on-disk spool directory (created 0700). */
  spoolDir: string;
  /** Documents go to `<prefix>-events-YYYY.MM.DD` by @timestamp (UTC). */
  indexPrefix: string;
  /** Events per bulk request (default 500). */
  batchSize?: number;
  /** Backoff for 429/5xx/connection errors, in milliseconds (defaults 500 and 30000). */
  retry?: { initialMs?: number; maxMs?: number };
}

/**
 * Counters since the pipeline was created, except `pending`, which counts
 * every spooled event not yet indexed or rejected, including those an
 * earlier process left in the spool. `retries` counts bulk requests sent
 * again after a retryable failure.
 */
export interface PipelineStats {
  spooled: number;
  indexed: number;
  duplicates: number;
  rejected: number;
  retries: number;
  pending: number;
}

export interface Pipeline {
  /** Appends events to the spool; once it resolves they survive a crash. Each event must carry a deterministic `event.id`, used as the document _id. */
  submit(events: EcsEvent[]): Promise<void>;
  /** Starts shipping spooled events in the background. */
  start(): void;
  /** Stops shipping after the current batch; the spool keeps what is left. */
  stop(): Promise<void>;
  /** Resolves once everything submitted so far is indexed (or rejected); rejects with an Error after timeoutMs. */
  drain(timeoutMs: number): Promise<void>;
  stats(): PipelineStats;
}

/** File under the spool directory that receives events the engine refused for good. */
export const rejectedEventsFileName = 'rejected-events.jsonl';

const defaultBatchSize = 500;
const defaultInitialMs = 500;
const defaultMaxMs = 30_000;
const maxIdLength = 512;

/** Throws an Error naming the field and the fix when an event cannot be shipped as given. */
export function assertShippable(event: EcsEvent, position: number): void {
  const where = `events[${position}]`;
  if (event === null || typeof event !== 'object')
    throw new Error(`${where} is not an object; submit ECS event objects.`);

  const id = event.event?.id;
  if (typeof id !== 'string' || id === '' || id.length > maxIdLength) {
    throw new Error(
      `${where}.event.id is missing or invalid; set a deterministic string id of 1 to ${maxIdLength} characters.`,
    );
  }

  const timestamp = event['@timestamp'];
  if (typeof timestamp !== 'string' || Number.isNaN(Date.parse(timestamp))) {
    throw new Error(
      `${where}["@timestamp"] is missing or invalid; set an ISO 8601 date-time such as 2026-01-01T00:00:00.000Z.`,
    );
  }
}

/** Delay before retry number `attempt` (0-based): exponential, capped, with jitter over its upper half. */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random = Math.random,
): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

class SpoolPipeline implements Pipeline {
  private readonly counters = { spooled: 0, indexed: 0, duplicates: 0, rejected: 0, retries: 0 };
  private running?: Promise<void>;
  private stopping = false;
  private templateReady = false;
  /** Highest seq the loop has read. While the spool's lastSeq is higher, unread records are waiting. */
  private lastRead = 0;
  private wake?: () => void;
  private readonly waiters = new Set<() => void>();
  private readonly batchSize: number;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly rejectedFile: string;

  constructor(
    private readonly options: PipelineOptions,
    private readonly spool: Spool<EcsEvent>,
  ) {
    this.batchSize = options.batchSize ?? defaultBatchSize;
    this.initialMs = options.retry?.initialMs ?? defaultInitialMs;
    this.maxMs = options.retry?.maxMs ?? defaultMaxMs;
    this.rejectedFile = path.join(options.spoolDir, rejectedEventsFileName);
  }

  async submit(events: EcsEvent[]): Promise<void> {
    events.forEach((event, position) => assertShippable(event, position));

    await this.spool.append(events);
    this.counters.spooled += events.length;
    this.wake?.();
  }

  start(): void {
    if (this.running) return;

    this.stopping = false;
    // Records read by a loop that stopped mid-batch were never acknowledged.
    this.spool.rewind();
    this.lastRead = this.spool.committed;
    this.running = this.ship().finally(() => {
      this.running = undefined;
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.running;
    // The spool reopens its segment on the next submit; closing here leaves no open file behind.
    await this.spool.close();
  }

  drain(timeoutMs: number): Promise<void> {
    const target = this.spool.lastSeq;
    if (this.spool.committed >= target || this.spool.pending === 0) return Promise.resolve();

    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.spool.committed < target && this.spool.pending > 0) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `Drain timed out after ${timeoutMs} ms with ${this.spool.pending} events still in the spool.`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  stats(): PipelineStats {
    return { ...this.counters, pending: this.spool.pending };
  }

  /** Reads, delivers and acknowledges one batch after another until stopped. */
  private async ship(): Promise<void> {
    while (!this.stopping) {
      const entries = await this.spool.read(this.batchSize);
      if (entries.length === 0) {
        await this.idle();
        continue;
      }
      this.lastRead = entries[entries.length - 1]!.seq;

      const done = await this.deliver(entries);
      if (!done) return;

      await this.spool.acknowledge(entries);
      for (const waiter of [...this.waiters]) waiter();
    }
  }

  /** Waits until a submit or stop wakes the loop. */
  private idle(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        resolve();
      };
      // Appends that resolved between the read and now would otherwise wait for the next submit.
      if (this.stopping || this.spool.lastSeq > this.lastRead) this.wake();
    });
  }

  /**
   * Sends a batch until every item is created, duplicate or rejected.
   * Returns false when stopped first; the batch then stays in the spool.
   */
  private async deliver(entries: SpoolEntry<EcsEvent>[]): Promise<boolean> {
    let remaining = entries.map((entry) => this.bulkItem(entry.record));
    let attempt = 0;

    while (remaining.length > 0) {
      if (!(await this.ensureTemplate(attempt))) return false;

      const results = await this.options.engine.bulkCreate(remaining);
      const retry: BulkCreateItem[] = [];
      const rejected: Array<{ item: BulkCreateItem; reason: string; httpStatus: number }> = [];
      let lastReason = '';

      results.forEach((result, position) => {
        const item = remaining[position]!;
        if (result.status === 'created') this.counters.indexed += 1;
        else if (result.status === 'duplicate') this.counters.duplicates += 1;
        else if (result.status === 'rejected')
          rejected.push({ item, reason: result.reason, httpStatus: result.httpStatus });
        else {
          retry.push(item);
          lastReason = result.reason;
        }
      });

      if (rejected.length > 0) await this.writeRejected(rejected);
      remaining = retry;
      if (remaining.length === 0) return true;

      const delay = backoffDelay(attempt, this.initialMs, this.maxMs);
      // One warning when an outage starts and one per ten retries after it, not one per retry.
      const level = attempt % 10 === 0 ? 'warn' : 'debug';
      logger[level](
        {
          retryable: remaining.length,
          batch: entries.length,
          reason: lastReason,
          delayMs: delay,
          attempt: attempt + 1,
        },
        'search engine did not take every event; retrying',
      );
      attempt += 1;
      if (!(await this.sleep(delay))) return false;
      this.counters.retries += 1;
    }
    return true;
  }

  private bulkItem(event: EcsEvent): BulkCreateItem {
    return {
      index: eventIndexName(this.options.indexPrefix, event['@timestamp']),
      id: event.event.id!,
      document: event,
    };
  }

  /** Puts the index template once per start, retrying like a bulk request while the engine is away. */
  private async ensureTemplate(attempt: number): Promise<boolean> {
    let tries = attempt;
    while (!this.templateReady) {
      try {
        await this.options.engine.ensureEventTemplate(this.options.indexPrefix);
        this.templateReady = true;
      } catch (error) {
        const delay = backoffDelay(tries, this.initialMs, this.maxMs);
        logger.warn(
          { err: error, delayMs: delay },
          'could not put the event index template; retrying',
        );
        tries += 1;
        if (!(await this.sleep(delay))) return false;
      }
    }
    return true;
  }

  /** Sleeps `ms`; returns false at once when the pipeline is stopping. */
  private sleep(ms: number): Promise<boolean> {
    if (this.stopping) return Promise.resolve(false);

    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve(!this.stopping);
      }, ms);
      this.wake = () => {
        // A submit during backoff must not cut it short; only stop does.
        if (!this.stopping) return;
        clearTimeout(timer);
        this.wake = undefined;
        resolve(false);
      };
    });
  }

  /** Appends refused events with their reason and fsyncs before the batch is acknowledged. */
  private async writeRejected(
    rejected: Array<{ item: BulkCreateItem; reason: string; httpStatus: number }>,
  ): Promise<void> {
    const time = new Date().toISOString();
    const lines = rejected.map(({ item, reason, httpStatus }) =>
      JSON.stringify({
        time,
        id: item.id,
        index: item.index,
        status: httpStatus,
        reason,
        event: item.document,
      }),
    );

    const handle = await fs.open(this.rejectedFile, 'a', 0o600);
    try {
      await handle.write(lines.join('\n') + '\n');
      await handle.datasync();
    } finally {
      await handle.close();
    }

    this.counters.rejected += rejected.length;
    logger.warn(
      { rejected: rejected.length, file: this.rejectedFile, firstReason: rejected[0]!.reason },
      'search engine refused events; they are in the rejected-events file',
    );
  }
}

/** Opens (or creates) the spool in `spoolDir` and returns a pipeline that ships from it once started. */
export async function createPipeline(options: PipelineOptions): Promise<Pipeline> {
  assertIndexPrefix(options.indexPrefix);
  const batchSize = options.batchSize ?? defaultBatchSize;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
    throw new Error(`Invalid batchSize ${batchSize}: use a whole number from 1 to 10000.`);
  }
  const { initialMs = defaultInitialMs, maxMs = defaultMaxMs } = options.retry ?? {};
  if (!(initialMs > 0) || !(maxMs >= initialMs)) {
    throw new Error(
      `Invalid retry {initialMs: ${initialMs}, maxMs: ${maxMs}}: use initialMs > 0 and maxMs >= initialMs.`,
    );
  }

  const spool = await Spool.open<EcsEvent>(options.spoolDir, {
    onCorruptLine: (line) =>
      logger.warn({ spoolDir: options.spoolDir, ...line }, 'skipped a corrupt spool line'),
  });
  return new SpoolPipeline(options, spool);
}
