import { apiGet, apiPatch, segment, withQuery } from '../lib/api';

/** Values of the API's alert fields, in the order the console offers them. */
export const ALERT_STATUSES = ['open', 'acknowledged', 'closed'] as const;
export const ALERT_SEVERITIES = ['critical', 'high', 'medium', 'low'] as const;

export type AlertStatus = (typeof ALERT_STATUSES)[number];
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

/** The detection rules that the appliance ships, which the rule filter offers by name. */
export const KNOWN_RULES: { id: string; name: string }[] = [
  { id: 'auth.brute_force', name: 'Brute-force login attempts' },
  { id: 'vault.mass_read', name: 'Mass read of prompts' },
];

/** A detection result, grouped per rule and entity while the burst that caused it goes on. */
export interface Alert {
  id: string;
  ruleId: string;
  ruleName: string;
  severity: AlertSeverity;
  status: AlertStatus;
  /** The ECS field and value that the alert is about, such as `source.ip` 203.0.113.9. */
  entity: { field: string; value: string };
  summary: string;
  eventCount: number;
  /** Event time of the first and last triggering event (ISO 8601). */
  firstSeen: string;
  lastSeen: string;
  createdAt: string;
  updatedAt: string;
}

/** One triggering event, fetched back from the search engine. */
export interface AlertEvent {
  id: string;
  index: string;
  timestamp: string;
  action?: string;
  outcome?: string;
  userName?: string;
  sourceIp?: string;
  dataset?: string;
  message?: string;
}

/** Filters of the alert list; each maps to the query parameter of the same name. */
export interface AlertFilter {
  status?: string;
  severity?: string;
  ruleId?: string;
  entity?: string;
}

/** Maximum number of alerts the list requests; the API allows up to 200. */
export const ALERT_LIST_LIMIT = 200;

/** Maximum number of triggering events the detail page requests; the API allows up to 500. */
export const ALERT_EVENTS_LIMIT = 200;

export async function listAlerts(filter: AlertFilter, signal?: AbortSignal): Promise<Alert[]> {
  const path = withQuery('/alerts', { ...filter, limit: String(ALERT_LIST_LIMIT) });
  return (await apiGet<{ items: Alert[] }>(path, { signal })).items;
}

export function getAlert(id: string, signal?: AbortSignal): Promise<Alert> {
  return apiGet<Alert>(`/alerts/${segment(id)}`, { signal });
}

export function listAlertEvents(
  id: string,
  signal?: AbortSignal,
): Promise<{ total: number; items: AlertEvent[] }> {
  const path = withQuery(`/alerts/${segment(id)}/events`, { limit: String(ALERT_EVENTS_LIMIT) });
  return apiGet<{ total: number; items: AlertEvent[] }>(path, { signal });
}

export function setAlertStatus(id: string, status: AlertStatus): Promise<Alert> {
  return apiPatch<Alert>(`/alerts/${segment(id)}`, { status });
}

/** Words for a status, as a label and as the verb of the button that sets it. */
export const STATUS_LABELS: Record<AlertStatus, { label: string; action: string }> = {
  open: { label: 'Open', action: 'Reopen' },
  acknowledged: { label: 'Acknowledged', action: 'Acknowledge' },
  closed: { label: 'Closed', action: 'Close alert' },
};
