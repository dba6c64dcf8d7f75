import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import { readState, writeState } from '../platform/state';
import type { AuditRecord } from './record';
import type { AuditTrail } from './trail';

/** Where forwarded records go: the collectors' pipeline, whose submit is durable once it resolves. */
export interface AuditSink {
  submitAudit(records: AuditRecord[]): Promise<void>;
}

const cursorKey = 'audit.forwarded_seq';
const batchSize = 500;

/**
 * Copies audit records from SQLite to the collectors' spool, oldest first.
 * SQLite stays the record of truth: the cursor moves only after the spool
 * holds a batch, so a crash between the two resends it and the search engine
 * drops the copy by its deterministic id.
 */
export class AuditForwarder {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly database: Database,
    private readonly trail: AuditTrail,
    private readonly sink: AuditSink,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => void this.forwardPending(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** Forwards every record after the cursor; concurrent calls share one run. */
  forwardPending(): Promise<void> {
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async drain(): Promise<void> {
    try {
      let cursor = await this.readCursor();
      while (!this.stopped) {
        const records = await this.trail.readAfter(cursor, batchSize);
        if (!records.length) return;

        await this.sink.submitAudit(records);
        cursor = records[records.length - 1].seq;
        await this.writeCursor(cursor);
      }
    } catch (error) {
      logger.warn({ err: error }, 'audit forwarding paused; it resumes on the next run');
    }
  }

  private async readCursor(): Promise<number> {
    return Number((await readState(this.database, cursorKey)) ?? 0);
  }

  private writeCursor(seq: number): Promise<void> {
    return this.database.write((transaction) =>
      writeState(this.database, cursorKey, String(seq), transaction),
    );
  }
}
