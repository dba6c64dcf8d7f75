import type { SearchEngine } from '../../collectors/search/engine';
import { recordFinding, type FindingRecorder, type RecordOutcome } from '../alerts/grouping';
import type { AlertEntity, StoredAlert } from '../alerts/model';
import type { AlertStore } from '../alerts/store';
import type { Database } from '../platform/database';
import {
  fetchEntityEvents,
  findTouchedEntities,
  termClause,
  type EntityEvent,
} from './event-search';
import type { DetectionRule, RuleBurst } from './rule';

export interface RuleRunDependencies {
  engine: SearchEngine;
  database: Database;
  store: AlertStore;
  /** Index pattern of the event indices. */
  index: string;
}

export interface RuleRunReport {
  ruleId: string;
  /** Entities with events ingested since the checkpoint. */
  entities: number;
  created: number;
  extended: number;
}

/**
 * Runs one rule over the events ingested at or after `since` (epoch
 * milliseconds; every event when undefined). Windows are judged by event
 * time: for each entity with new events, every event of that entity within
 * one window before and after the new ones is fetched again, so a burst
 * split over several runs, or replayed from an old log, is seen whole. Only
 * bursts that contain a new event are stored.
 */
export async function runRule(
  rule: DetectionRule,
  dependencies: RuleRunDependencies,
  since: number | undefined,
): Promise<RuleRunReport> {
  const { engine, index } = dependencies;
  const report: RuleRunReport = { ruleId: rule.id, entities: 0, created: 0, extended: 0 };
  const recorder = findingRecorder(rule, dependencies);

  const touched = await findTouchedEntities(engine, index, rule.criteria, rule.entityField, since);
  report.entities = touched.length;

  for (const entity of touched) {
    const from = entity.firstTime - rule.windowMs;
    const to = entity.lastTime + rule.windowMs;
    const fetched = await fetchEntityEvents(
      engine,
      index,
      rule.criteria,
      rule.entityField,
      entity.value,
      from,
      to,
    );

    const closed = await closedRanges(dependencies.store, rule, entity.value, from, to);
    const events = fetched.filter(
      (event) => !closed.some((range) => event.time >= range.from && event.time <= range.to),
    );

    const times = events.map((event) => event.time);
    const bursts = await rule.evaluate(entity.value, times, { engine, index });

    for (const burst of bursts) {
      if (!containsNewEvent(events, burst, since)) continue;

      const outcome = await recordBurst(
        rule,
        dependencies,
        recorder,
        { field: rule.entityField, value: entity.value },
        burst,
      );
      if (outcome === 'created') report.created += 1;
      if (outcome === 'extended') report.extended += 1;
    }
  }

  return report;
}

function findingRecorder(rule: DetectionRule, dependencies: RuleRunDependencies): FindingRecorder {
  return {
    windowMs: rule.windowMs,
    queryFor: (entity, firstSeen, lastSeen) => ({
      index: dependencies.index,
      query: {
        bool: {
          filter: [
            ...rule.criteria,
            termClause(entity.field, entity.value),
            { range: { '@timestamp': { gte: firstSeen, lte: lastSeen } } },
          ],
        },
      },
    }),
    countEvents: (query) => dependencies.engine.count(query.index, query.query),
  };
}

async function recordBurst(
  rule: DetectionRule,
  dependencies: RuleRunDependencies,
  recorder: FindingRecorder,
  entity: AlertEntity,
  burst: RuleBurst,
): Promise<RecordOutcome> {
  const { outcome } = await recordFinding(dependencies.database, dependencies.store, recorder, {
    ruleId: rule.id,
    entity,
    severity: burst.severity,
    firstSeen: new Date(burst.firstSeen).toISOString(),
    lastSeen: new Date(burst.lastSeen).toISOString(),
    summarize: burst.summarize,
  });
  return outcome;
}

/**
 * Event-time ranges of the entity's closed alerts near [from, to]. Their
 * events were already triaged, so the run drops them before it looks for bursts.
 */
async function closedRanges(
  store: AlertStore,
  rule: DetectionRule,
  entityValue: string,
  from: number,
  to: number,
) {
  const alerts: StoredAlert[] = await store.listForEntity(
    rule.id,
    entityValue,
    new Date(from).toISOString(),
    new Date(to).toISOString(),
  );
  return alerts
    .filter((alert) => alert.status === 'closed')
    .map((alert) => ({ from: Date.parse(alert.firstSeen), to: Date.parse(alert.lastSeen) }));
}

function containsNewEvent(
  events: EntityEvent[],
  burst: RuleBurst,
  since: number | undefined,
): boolean {
  if (since === undefined) return true;
  return events
    .slice(burst.start, burst.end + 1)
    .some((event) => event.ingested !== undefined && event.ingested >= since);
}
