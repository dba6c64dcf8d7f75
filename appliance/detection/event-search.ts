import type { SearchEngine } from '../../collectors/search/engine';

/** Query DSL clause, as placed in a bool `filter`. */
export type QueryClause = Record<string, unknown>;

/** An entity with events ingested since the checkpoint, and the event-time range of those events. */
export interface TouchedEntity {
  value: string;
  /** Epoch milliseconds. */
  firstTime: number;
  lastTime: number;
}

/** One event of an entity: its event time and when the engine received it, in epoch milliseconds. */
export interface EntityEvent {
  time: number;
  ingested?: number;
}

const entityPageSize = 500;
const eventPageSize = 5000;

export function termClause(field: string, value: string): QueryClause {
  return { term: { [field]: value } };
}

/** Matches `@timestamp` in [from, to], both inclusive, in epoch milliseconds. */
export function timeRangeClause(from: number, to: number): QueryClause {
  return { range: { '@timestamp': { gte: from, lte: to, format: 'epoch_millis' } } };
}

/**
 * Lists the values of `entityField` among events that match `criteria` and
 * whose `event.ingested` is at or after `since` (every event when undefined),
 * paging through a composite aggregation.
 */
export async function findTouchedEntities(
  engine: SearchEngine,
  index: string,
  criteria: QueryClause[],
  entityField: string,
  since: number | undefined,
): Promise<TouchedEntity[]> {
  const filter = [...criteria, { exists: { field: entityField } }];
  if (since !== undefined)
    filter.push({ range: { 'event.ingested': { gte: since, format: 'epoch_millis' } } });

  const entities: TouchedEntity[] = [];
  let after: Record<string, unknown> | undefined;
  do {
    const result = await engine.search(index, {
      size: 0,
      track_total_hits: false,
      query: { bool: { filter } },
      aggs: {
        entities: {
          composite: {
            size: entityPageSize,
            sources: [{ entity: { terms: { field: entityField } } }],
            ...(after ? { after } : {}),
          },
          aggs: { first: { min: { field: '@timestamp' } }, last: { max: { field: '@timestamp' } } },
        },
      },
    });

    const aggregation = result.aggregations?.entities as CompositeAggregation | undefined;
    for (const bucket of aggregation?.buckets ?? []) {
      entities.push({
        value: String(bucket.key.entity),
        firstTime: bucket.first.value,
        lastTime: bucket.last.value,
      });
    }
    after = aggregation?.buckets.length ? aggregation.after_key : undefined;
  } while (after);

  return entities;
}

interface CompositeAggregation {
  after_key?: Record<string, unknown>;
  buckets: Array<{ key: { entity: unknown }; first: { value: number }; last: { value: number } }>;
}

/**
 * Fetches the time of every event of one entity that matches `criteria` with
 * `@timestamp` in [from, to], oldest first, paging with `search_after`.
 */
export async function fetchEntityEvents(
  engine: SearchEngine,
  index: string,
  criteria: QueryClause[],
  entityField: string,
  entityValue: string,
  from: number,
  to: number,
): Promise<EntityEvent[]> {
  const query = {
    bool: {
      filter: [...criteria, termClause(entityField, entityValue), timeRangeClause(from, to)],
    },
  };
  const events: EntityEvent[] = [];
  let searchAfter: unknown[] | undefined;

  for (;;) {
    const result = await engine.search(index, {
      size: eventPageSize,
      track_total_hits: false,
      query,
      _source: ['event.ingested'],
      // event.id is the deterministic document id every collector sets; it
      // breaks ties between events of the same millisecond for paging.
      sort: [{ '@timestamp': 'asc' }, { 'event.id': { order: 'asc', unmapped_type: 'keyword' } }],
      ...(searchAfter ? { search_after: searchAfter } : {}),
    });

    for (const hit of result.hits) {
      const ingested = (hit.source.event as { ingested?: string } | undefined)?.ingested;
      const parsed = ingested === undefined ? Number.NaN : Date.parse(ingested);
      events.push({
        time: Number(hit.sort?.[0]),
        ...(Number.isNaN(parsed) ? {} : { ingested: parsed }),
      });
    }

    if (result.hits.length < eventPageSize) return events;
    searchAfter = result.hits[result.hits.length - 1].sort;
  }
}

/** Counts the events that match `criteria` for one entity with `@timestamp` in [from, to). */
export function countEntityEvents(
  engine: SearchEngine,
  index: string,
  criteria: QueryClause[],
  entityField: string,
  entityValue: string,
  from: number,
  toExclusive: number,
): Promise<number> {
  return engine.count(index, {
    bool: {
      filter: [
        ...criteria,
        termClause(entityField, entityValue),
        { range: { '@timestamp': { gte: from, lt: toExclusive, format: 'epoch_millis' } } },
      ],
    },
  });
}
