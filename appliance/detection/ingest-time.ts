import type { BulkCreateItem, SearchEngine } from '../../collectors/search/engine';

/**
 * Wraps an engine so every document it indexes carries `event.ingested`, the
 * ECS time the event reached the event store, set when the bulk request is
 * sent. Detections read new events by this field, because the event's own
 * `@timestamp` may lie far in the past for a replayed log.
 */
export function withIngestTimestamp(engine: SearchEngine): SearchEngine {
  return {
    get distribution() {
      return engine.distribution;
    },
    info: () => engine.info(),
    ensureEventTemplate: (prefix) => engine.ensureEventTemplate(prefix),
    bulkCreate: (items: BulkCreateItem[]) => {
      const ingested = new Date().toISOString();
      return engine.bulkCreate(
        items.map((item) => ({ ...item, document: stampIngested(item.document, ingested) })),
      );
    },
    search: (index, body) => engine.search(index, body),
    count: (index, query) => engine.count(index, query),
    refresh: (index) => engine.refresh(index),
    close: () => engine.close(),
  };
}

function stampIngested(document: object, ingested: string): object {
  const event = (document as { event?: Record<string, unknown> }).event;
  return { ...document, event: { ...event, ingested } };
}
