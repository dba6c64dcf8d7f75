import type { SearchEngine } from '../../collectors/search/engine';
import { eventIndexPattern } from '../../collectors/search/event-template';
import type { AlertStore } from '../alerts/store';
import type { ApplianceConfig } from '../platform/config';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import { readState, writeState } from '../platform/state';
import { bruteForceRule } from './brute-force';
import { massReadRule } from './mass-read';
import type { DetectionRule } from './rule';
import { runRule, type RuleRunReport } from './run-rule';

export interface DetectionSchedulerOptions {
  engine: SearchEngine;
  database: Database;
  store: AlertStore;
  indexPrefix: string;
  detection: ApplianceConfig['detection'];
  /**
   * How far back before the checkpoint each run looks again, in
   * milliseconds. A document is stamped with `event.ingested` when its bulk
   * request is sent and becomes searchable only after the request returns,
   * so a run may miss a document stamped just before it started. Rescanning
   * is harmless because alerts are recounted, never incremented.
   */
  settleMs?: number;
}

/** The 30 s bulk request timeout of the search clients, with room to spare. */
const defaultSettleMs = 120_000;

export function checkpointKey(ruleId: string): string {
  return `detection.${ruleId}.ingested_checkpoint`;
}

/**
 * Runs the detection rules every `detection.intervalSeconds`, one run at a
 * time. Each rule keeps its own checkpoint in appliance_state: the wall time
 * its last successful run started, compared with `event.ingested`.
 */
export class DetectionScheduler {
  readonly rules: DetectionRule[];
  private timer?: NodeJS.Timeout;
  private running: Promise<unknown> = Promise.resolve();
  private busy = false;

  constructor(private readonly options: DetectionSchedulerOptions) {
    const detection = options.detection;
    this.rules = [
      bruteForceRule({
        threshold: detection.bruteForceThreshold,
        windowSeconds: detection.bruteForceWindowSeconds,
      }),
      massReadRule({
        threshold: detection.massReadThreshold,
        windowSeconds: detection.massReadWindowSeconds,
        baselineFactor: detection.massReadBaselineFactor,
      }),
    ];
  }

  start(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), this.options.detection.intervalSeconds * 1000);
    this.timer.unref();
  }

  /** Stops the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running.catch(() => undefined);
  }

  /**
   * Runs every rule once, after any run in progress has finished, and
   * rejects when a rule failed; the rules that succeeded keep their new
   * checkpoints.
   */
  runOnce(): Promise<RuleRunReport[]> {
    const run = this.running.catch(() => undefined).then(() => this.runRules());
    this.running = run;
    return run;
  }

  /** Starts a run unless one is in progress, so timer runs never overlap or queue up. */
  private tick(): void {
    if (this.busy) return;
    this.runOnce().catch((error: unknown) =>
      logger.warn({ err: error }, 'detection run failed; it is retried on the next interval'),
    );
  }

  private async runRules(): Promise<RuleRunReport[]> {
    this.busy = true;
    try {
      const { engine, database, store, indexPrefix } = this.options;
      const index = eventIndexPattern(indexPrefix);
      const reports: RuleRunReport[] = [];
      const failures: unknown[] = [];

      // Documents indexed before this point become searchable now rather than
      // at the engine's next periodic refresh.
      await engine.refresh(index);

      for (const rule of this.rules) {
        const startedAt = Date.now();
        try {
          const since = await this.readCheckpoint(rule.id);
          const report = await runRule(rule, { engine, database, store, index }, since);
          await database.write((transaction) =>
            writeState(
              database,
              checkpointKey(rule.id),
              new Date(startedAt).toISOString(),
              transaction,
            ),
          );

          reports.push(report);
          if (report.created || report.extended)
            logger.info({ detection: report }, 'detection raised alerts');
        } catch (error) {
          logger.warn(
            { err: error, ruleId: rule.id },
            'detection rule failed; its checkpoint stays where it was',
          );
          failures.push(error);
        }
      }

      if (failures.length)
        throw new AggregateError(
          failures,
          `${failures.length} detection rule(s) failed; see the log for each rule id.`,
        );
      return reports;
    } finally {
      this.busy = false;
    }
  }

  /** Epoch milliseconds to scan from, or undefined on a rule's first run (scan every event). */
  private async readCheckpoint(ruleId: string): Promise<number | undefined> {
    const value = await readState(this.options.database, checkpointKey(ruleId));
    if (value === undefined) return undefined;
    return Date.parse(value) - (this.options.settleMs ?? defaultSettleMs);
  }
}
