import type { BulkItemResult, SearchHit, SearchResult } from './engine.js';

/** One entry of a bulk response's `items`, as both engines return it. */
interface BulkResponseItem {
  [operation: string]:
    { status?: number; error?: { type?: string; reason?: string | null } } | undefined;
}

/** Maps a bulk response's `items` to one result per request item. */
export function bulkItemResults(items: unknown, expected: number): BulkItemResult[] {
  if (!Array.isArray(items) || items.length !== expected) {
    const got = Array.isArray(items) ? items.length : 'no';
    return Array.from({ length: expected }, () => ({
      status: 'retryable' as const,
      reason: `bulk response has ${got} items for ${expected} requests`,
    }));
  }
  return items.map((item: BulkResponseItem) => bulkItemResult(item));
}

function bulkItemResult(item: BulkResponseItem): BulkItemResult {
  const operation = item.create ?? Object.values(item)[0];
  const status = operation?.status ?? 0;

  if (status === 200 || status === 201) return { status: 'created' };
  if (status === 409) return { status: 'duplicate' };

  const error = operation?.error;
  const reason = error
    ? `${error.type ?? 'error'}: ${error.reason ?? ''}`.trim()
    : `HTTP ${status}`;
  if (status === 429 || status >= 500 || status === 0) return { status: 'retryable', reason };
  return { status: 'rejected', reason, httpStatus: status };
}

/**
 * Describes a failed request for the `retryable` reason: the HTTP status and
 * error type when the engine answered, the client's error otherwise.
 */
export function requestFailureReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);

  const meta = (error as { meta?: { statusCode?: number; body?: unknown } }).meta;
  const statusCode = meta?.statusCode ?? (error as { statusCode?: number }).statusCode;
  const body = meta?.body as { error?: { type?: string; reason?: string } } | undefined;
  const detail = body?.error?.type
    ? `${body.error.type}: ${body.error.reason ?? ''}`
    : error.message;
  return statusCode ? `HTTP ${statusCode} ${detail}`.trim() : `${error.name}: ${detail}`;
}

/** Normalises a search response body of either engine. */
export function searchResult(body: unknown): SearchResult {
  const response = body as {
    hits?: {
      total?: number | { value: number };
      hits?: Array<{
        _index: string;
        _id: string;
        _source?: Record<string, unknown>;
        sort?: unknown[];
      }>;
    };
    aggregations?: Record<string, unknown>;
  };
  const total = response.hits?.total;
  const hits: SearchHit[] = (response.hits?.hits ?? []).map((hit) => ({
    index: hit._index,
    id: hit._id,
    source: hit._source ?? {},
    ...(hit.sort ? { sort: hit.sort } : {}),
  }));
  return {
    total: typeof total === 'number' ? total : (total?.value ?? hits.length),
    hits,
    ...(response.aggregations ? { aggregations: response.aggregations } : {}),
  };
}

/** Builds the NDJSON action/document pairs of a bulk `create` request. */
export function bulkCreateOperations(
  items: Array<{ index: string; id: string; document: object }>,
): object[] {
  const operations: object[] = [];
  for (const item of items) {
    operations.push({ create: { _index: item.index, _id: item.id } }, item.document);
  }
  return operations;
}
