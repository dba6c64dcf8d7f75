/**
 * The one interface the collectors use to talk to the search engine, so the
 * rest of the code never sees which client library is behind it. The
 * OpenSearch client talks to OpenSearch, the Elastic client to Elasticsearch
 * 8 and 9; `connectSearchEngine` picks one from the engine's own `GET /`.
 */

export type SearchDistribution = 'opensearch' | 'elasticsearch';

export interface SearchEngineInfo {
  distribution: SearchDistribution;
  /** Version string the engine reports, for example `2.19.1`. */
  version: string;
  clusterName: string;
}

/** One document to index with op `create` under a fixed `_id`. */
export interface BulkCreateItem {
  index: string;
  id: string;
  document: object;
}

/**
 * Outcome of one bulk item.
 * - `created`: the engine stored the document.
 * - `duplicate`: a document with this `_id` already exists (HTTP 409), so an
 *   earlier send got through; callers count it as delivered.
 * - `retryable`: HTTP 429, 5xx, a timeout or no connection; send it again later.
 * - `rejected`: any other 4xx, such as a mapping conflict; sending it again
 *   would fail the same way.
 */
export type BulkItemResult =
  | { status: 'created' }
  | { status: 'duplicate' }
  | { status: 'retryable'; reason: string }
  | { status: 'rejected'; reason: string; httpStatus: number };

export interface SearchHit {
  index: string;
  id: string;
  source: Record<string, unknown>;
  sort?: unknown[];
}

export interface SearchResult {
  /** Exact number of matching documents (`track_total_hits` is set). */
  total: number;
  hits: SearchHit[];
  aggregations?: Record<string, unknown>;
}

export interface SearchEngine {
  readonly distribution: SearchDistribution;

  /** Fetches the engine's distribution, version and cluster name. */
  info(): Promise<SearchEngineInfo>;

  /**
   * Creates or updates the index template `<prefix>-events` that maps the
   * daily event indices `<prefix>-events-*`. Safe to call on every start.
   */
  ensureEventTemplate(prefix: string): Promise<void>;

  /**
   * Indexes documents with op `create`, returning one result per item in the
   * order given. Never throws for an engine that is down or overloaded:
   * every item is then `retryable` with the cause as the reason.
   */
  bulkCreate(items: BulkCreateItem[]): Promise<BulkItemResult[]>;

  /** Runs a search request body (query, sort, size, aggs) on an index or pattern. */
  search(index: string, body: Record<string, unknown>): Promise<SearchResult>;

  /** Counts documents matching a query (all documents when absent). */
  count(index: string, query?: Record<string, unknown>): Promise<number>;

  /** Makes recent writes visible to search. */
  refresh(index: string): Promise<void>;

  /** Closes the client's connections. */
  close(): Promise<void>;
}
