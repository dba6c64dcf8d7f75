import type { SearchEngine, SearchHit } from '../../collectors/search/engine';
import { problems } from '../http/problem';
import { logger } from '../platform/logger';
import type { StoredAlert } from './model';

/** One triggering event of an alert, as the alerts API returns it. */
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

/**
 * Fetches up to `limit` events of an alert, oldest first, with the query
 * stored on it. Rejects with a 503 problem when the search fails.
 */
export async function fetchAlertEvents(
  engine: SearchEngine,
  alert: StoredAlert,
  limit: number,
): Promise<{ total: number; items: AlertEvent[] }> {
  try {
    const result = await engine.search(alert.eventQuery.index, {
      query: alert.eventQuery.query,
      size: limit,
      sort: [{ '@timestamp': 'asc' }, { 'event.id': { order: 'asc', unmapped_type: 'keyword' } }],
    });
    return { total: result.total, items: result.hits.map(toAlertEvent) };
  } catch (error) {
    logger.warn(
      { err: error, alertId: alert.id },
      'could not fetch alert events from the search engine',
    );
    throw problems.searchUnavailable(
      'The search engine did not return the events of this alert; check that it is running, then retry.',
    );
  }
}

function toAlertEvent(hit: SearchHit): AlertEvent {
  const source = hit.source as {
    '@timestamp'?: string;
    message?: string;
    event?: { action?: string; outcome?: string; dataset?: string };
    user?: { name?: string };
    source?: { ip?: string };
  };

  const event: AlertEvent = { id: hit.id, index: hit.index, timestamp: source['@timestamp'] ?? '' };
  if (source.event?.action !== undefined) event.action = source.event.action;
  if (source.event?.outcome !== undefined) event.outcome = source.event.outcome;
  if (source.user?.name !== undefined) event.userName = source.user.name;
  if (source.source?.ip !== undefined) event.sourceIp = source.source.ip;
  if (source.event?.dataset !== undefined) event.dataset = source.event.dataset;
  if (source.message !== undefined) event.message = source.message;
  return event;
}
