/** Alert records as the alerts API returns them; see the alerts API contract. */

export const ruleIds = ['auth.brute_force', 'vault.mass_read', 'access.break_glass'] as const;
export type RuleId = (typeof ruleIds)[number];

export const ruleNames: Record<RuleId, string> = {
  'auth.brute_force': 'Brute-force login attempts',
  'vault.mass_read': 'Mass read of prompts',
  'access.break_glass': 'Break-glass access opened',
};

/** Ordered from least to most severe; the index is the rank. */
export const severities = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof severities)[number];

export const alertStatuses = ['open', 'acknowledged', 'closed'] as const;
export type AlertStatus = (typeof alertStatuses)[number];

export const entityFields = ['source.ip', 'user.name'] as const;
export type EntityField = (typeof entityFields)[number];

export interface AlertEntity {
  field: EntityField;
  value: string;
}

export interface Alert {
  id: string;
  ruleId: RuleId;
  ruleName: string;
  severity: Severity;
  status: AlertStatus;
  entity: AlertEntity;
  /** One English sentence. */
  summary: string;
  eventCount: number;
  /** ISO time of the first triggering event (event time, not detection time). */
  firstSeen: string;
  /** ISO time of the last triggering event. */
  lastSeen: string;
  createdAt: string;
  updatedAt: string;
}

/** The search that fetches an alert's triggering events back from the engine. */
export interface StoredEventQuery {
  /** Index pattern, such as `appliance-events-*`. */
  index: string;
  /** Query DSL placed under `query` of a search body. */
  query: Record<string, unknown>;
}

/** An alert together with the query that selects its events. */
export interface StoredAlert extends Alert {
  eventQuery: StoredEventQuery;
}

export function higherSeverity(a: Severity, b: Severity): Severity {
  return severities.indexOf(a) >= severities.indexOf(b) ? a : b;
}
