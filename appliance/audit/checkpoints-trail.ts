import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import type { ChainVerification } from './chain';
import { CheckpointStore, signCheckpoint, type BrokenCheckpoint } from './checkpoints';
import { readAuditSeal } from './seal';
import type { AuditOutcome, AuditRecord } from './record';
import { AuditTrail, type AuditEntry } from './trail';

/** Audit action of the record written with each checkpoint. */
export const checkpointAction = 'audit.checkpoint.sign';

/** When checkpoints are due; see ApplianceConfig.audit. */
export interface CheckpointPolicy {
  /** Records since the last checkpoint that make the next one due. */
  records: number;
  /** Minutes since the last checkpoint after which any new record makes one due. */
  minutes: number;
  /** How often the timer checks the age rule, in milliseconds (default 60 000). */
  checkIntervalMs?: number;
}

/** Chain verification plus the result of checking every signed checkpoint. */
export interface AuditVerification extends ChainVerification {
  checkpoints: { checked: number; broken: BrokenCheckpoint[] };
}

const defaultCheckIntervalMs = 60_000;

/**
 * The audit trail with signed checkpoints. A checkpoint appends its own
 * `audit.checkpoint.sign` record and then signs the chain head at that
 * record, in one write transaction. So each checkpoint covers the record of
 * its own signing, and an idle appliance writes no further checkpoints.
 *
 * Checkpoints are written off the request path: after a commit that makes
 * one due (setImmediate) and from an unref'd timer for the age rule. They
 * queue behind other writers like any write transaction.
 */
export class CheckpointingAuditTrail extends AuditTrail {
  readonly checkpoints: CheckpointStore;

  private timer: NodeJS.Timeout | undefined;
  private pending: Promise<void> | undefined;
  private stopped = false;
  /** Set after a failed checkpoint so that only the timer retries, not every commit. */
  private failed = false;

  constructor(
    private readonly checkpointDatabase: Database,
    private readonly signer: KeyProvider,
    private readonly policy: CheckpointPolicy,
  ) {
    super(checkpointDatabase, signer);
    this.checkpoints = new CheckpointStore(checkpointDatabase);
  }

  override async append(entry: AuditEntry, transaction: Transaction): Promise<AuditRecord> {
    const record = await super.append(entry, transaction);
    transaction.afterCommit(() => this.scheduleCheck());
    return record;
  }

  /** Starts the timer of the age rule; it does not keep the process alive. */
  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(
      () => this.scheduleCheck(true),
      this.policy.checkIntervalMs ?? defaultCheckIntervalMs,
    );
    this.timer.unref();
  }

  /** Stops the timer and waits for a checkpoint in progress; call before closing the database. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.idle();
  }

  /** Resolves once no checkpoint check is queued or running. */
  async idle(): Promise<void> {
    while (this.pending) await this.pending;
  }

  /**
   * Writes a checkpoint when one is due and returns its seq, or undefined
   * when none is due. Throws when the signature or its audit record cannot
   * be written, and then nothing of the checkpoint is stored.
   */
  async checkpointIfDue(now: Date = new Date()): Promise<number | undefined> {
    return this.checkpointDatabase.write(async (transaction) => {
      const head = await this.readLastRecord(transaction);
      const last = await this.checkpoints.latest(transaction);
      const sinceLast = head.seq - (last?.seq ?? 0);
      if (sinceLast === 0) return undefined;

      // Before the first checkpoint, the age rule counts from the first record.
      const since = last ? Date.parse(last.time) : await this.firstRecordTime(transaction);
      const ageMinutes = (now.getTime() - since) / 60_000;
      const due = sinceLast >= this.policy.records || ageMinutes >= this.policy.minutes;
      if (!due) return undefined;

      return this.writeCheckpoint(now, transaction);
    });
  }

  /** Verifies the chain and every checkpoint; `ok` is false when either fails. */
  override async verify(): Promise<AuditVerification> {
    const chain = await super.verify();
    const seal = await readAuditSeal(this.checkpointDatabase);
    const checkpoints = await this.checkpoints.verifyAll(
      this.signer,
      seal?.signingPublicKeyPem
        ? { seq: seal.seq, signingPublicKeyPem: seal.signingPublicKeyPem }
        : undefined,
    );
    const firstBrokenCheckpoint = checkpoints.broken[0];

    return {
      ...chain,
      ok: chain.ok && checkpoints.broken.length === 0,
      ...(chain.firstBroken === undefined && firstBrokenCheckpoint
        ? { firstBroken: firstBrokenCheckpoint }
        : {}),
      checkpoints,
    };
  }

  private async writeCheckpoint(now: Date, transaction: Transaction): Promise<number> {
    const started = performance.now();
    const record = await super.append(checkpointEntry('success'), transaction);

    const checkpoint = signCheckpoint(this.signer, record, now);
    await this.checkpoints.insert(checkpoint, transaction);

    transaction.afterCommit(() =>
      logger.info(
        {
          seq: checkpoint.seq,
          signingKeyUri: checkpoint.signingKeyUri,
          durationMs: Math.round((performance.now() - started) * 100) / 100,
        },
        'audit checkpoint signed',
      ),
    );
    return checkpoint.seq;
  }

  /**
   * Queues one check unless one is already queued. A failure is logged and
   * recorded as a failed `audit.checkpoint.sign` when the trail still takes
   * records. After a failure only the timer retries, because every failure
   * record is a commit and would otherwise start the next attempt at once.
   */
  private scheduleCheck(fromTimer = false): void {
    if (this.stopped || this.pending) return;
    if (this.failed && !fromTimer) return;

    this.pending = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => (this.stopped ? undefined : this.checkpointIfDue()))
      .then(
        () => {
          this.failed = false;
        },
        (error: unknown) => {
          this.failed = true;
          return this.recordFailure(error);
        },
      )
      .finally(() => {
        this.pending = undefined;
      });
  }

  private async recordFailure(error: unknown): Promise<void> {
    logger.error(
      { err: error },
      'signing the audit checkpoint failed; the next timer tick retries',
    );
    try {
      await this.appendAlone(checkpointEntry('failure', failureReason(error)));
    } catch (appendError) {
      logger.error(
        { err: appendError },
        'the failed audit checkpoint could not be recorded in the audit trail',
      );
    }
  }

  private async readLastRecord(transaction: Transaction): Promise<{ seq: number; hash: string }> {
    const rows = await this.checkpointDatabase.sequelize.query<{ seq: number; hash: string }>(
      'SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1',
      { type: QueryTypes.SELECT, transaction },
    );
    return rows[0] ?? { seq: 0, hash: '' };
  }

  private async firstRecordTime(transaction: Transaction): Promise<number> {
    const rows = await this.checkpointDatabase.sequelize.query<{ time: string }>(
      'SELECT time FROM audit_records ORDER BY seq LIMIT 1',
      { type: QueryTypes.SELECT, transaction },
    );
    return rows[0] ? Date.parse(rows[0].time) : Date.now();
  }
}

/** Builds the `audit.checkpoint.sign` record; the appliance itself is the actor. */
function checkpointEntry(outcome: AuditOutcome, reason?: string): AuditEntry {
  return {
    requestId: crypto.randomUUID(),
    actor: { username: 'appliance' },
    action: checkpointAction,
    resource: { type: 'audit_chain' },
    outcome,
    sourceIp: 'local',
    ...(reason ? { reason } : {}),
  };
}

/** Returns the reason for the failure record: an error code or class name, never a message with values. */
function failureReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.name : 'unknown error';
}
