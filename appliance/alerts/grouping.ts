import type { Database } from '../platform/database';
import {
  higherSeverity,
  type AlertEntity,
  type RuleId,
  type Severity,
  type StoredAlert,
  type StoredEventQuery,
} from './model';
import type { AlertStore } from './store';

/** A burst one detection run found for one entity. Times are ISO 8601 event times. */
export interface Finding {
  ruleId: RuleId;
  entity: AlertEntity;
  severity: Severity;
  firstSeen: string;
  lastSeen: string;
  /** Writes the alert summary for an alert range of `eventCount` events between two ISO times. */
  summarize(eventCount: number, firstSeen: string, lastSeen: string): string;
}

export interface FindingRecorder {
  /** The rule's window: a burst that starts within this many milliseconds of an alert's range joins it. */
  windowMs: number;
  /** Builds the query that selects the rule's events of the entity in [firstSeen, lastSeen]. */
  queryFor(entity: AlertEntity, firstSeen: string, lastSeen: string): StoredEventQuery;
  /** Counts the events a stored query selects. */
  countEvents(query: StoredEventQuery): Promise<number>;
}

export type RecordOutcome = 'created' | 'extended' | 'unchanged';

/**
 * Stores a finding. The finding extends an alert of the same rule and entity
 * that is not closed when their event-time ranges overlap or lie at most
 * the rule's window apart. Otherwise it opens a new alert. The event count is
 * always recounted from the engine over the whole range, so processing the
 * same events twice changes nothing.
 */
export async function recordFinding(
  database: Database,
  store: AlertStore,
  recorder: FindingRecorder,
  finding: Finding,
): Promise<{ alert: StoredAlert; outcome: RecordOutcome }> {
  // The loop repeats only when an analyst closed the target alert between
  // the read below and the write. The next pass no longer picks that alert.
  for (;;) {
    const target = await groupTarget(store, recorder.windowMs, finding);
    const firstSeen =
      target && target.firstSeen < finding.firstSeen ? target.firstSeen : finding.firstSeen;
    const lastSeen =
      target && target.lastSeen > finding.lastSeen ? target.lastSeen : finding.lastSeen;
    const eventQuery = recorder.queryFor(finding.entity, firstSeen, lastSeen);
    const eventCount = await recorder.countEvents(eventQuery);
    const summary = finding.summarize(eventCount, firstSeen, lastSeen);
    const severity = target ? higherSeverity(target.severity, finding.severity) : finding.severity;

    const result = await database.write(async (transaction) => {
      if (!target) {
        const alert = await store.create(
          {
            ruleId: finding.ruleId,
            entity: finding.entity,
            severity,
            summary,
            eventCount,
            firstSeen,
            lastSeen,
            eventQuery,
          },
          transaction,
        );
        return { alert, outcome: 'created' as const };
      }

      const current = await store.get(target.id, transaction);
      if (!current || current.status === 'closed') return undefined;

      const unchanged =
        current.eventCount === eventCount &&
        current.firstSeen === firstSeen &&
        current.lastSeen === lastSeen &&
        current.severity === severity;
      if (unchanged) return { alert: current, outcome: 'unchanged' as const };

      const alert = await store.extend(
        target.id,
        { severity, summary, eventCount, firstSeen, lastSeen, eventQuery },
        transaction,
      );
      return { alert: alert!, outcome: 'extended' as const };
    });

    if (result) return result;
  }
}

/** Finds the newest alert of the finding's rule and entity that is not closed and lies within the window. */
async function groupTarget(
  store: AlertStore,
  windowMs: number,
  finding: Finding,
): Promise<StoredAlert | undefined> {
  const from = new Date(Date.parse(finding.firstSeen) - windowMs).toISOString();
  const to = new Date(Date.parse(finding.lastSeen) + windowMs).toISOString();
  const nearby = await store.listForEntity(finding.ruleId, finding.entity.value, from, to);
  return nearby.find((alert) => alert.status !== 'closed');
}
