import type { SearchEngine } from '../../collectors/search/engine';
import type { EntityField, RuleId, Severity } from '../alerts/model';
import type { Burst } from './bursts';
import type { QueryClause } from './event-search';

/** A burst a rule reports, with its severity and the summary it writes for an alert range. */
export interface RuleBurst extends Burst {
  severity: Severity;
  /** Writes the alert summary for an alert range of `eventCount` events between two ISO times. */
  summarize(eventCount: number, firstSeen: string, lastSeen: string): string;
}

/** Search access a rule gets while it judges one entity. */
export interface RuleContext {
  engine: SearchEngine;
  /** Index pattern of the event indices. */
  index: string;
}

/** A threshold detection over the events of one entity at a time. */
export interface DetectionRule {
  id: RuleId;
  entityField: EntityField;
  /** Length of the sliding window, in milliseconds. */
  windowMs: number;
  /** Filter clauses every event the rule counts matches. */
  criteria: QueryClause[];
  /** Finds the bursts among one entity's event times (epoch milliseconds, sorted ascending). */
  evaluate(entityValue: string, times: number[], context: RuleContext): Promise<RuleBurst[]>;
}
