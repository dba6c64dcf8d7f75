import { requestFailureReason } from './bulk-results.js';
import { ElasticsearchEngine } from './elasticsearch-engine.js';
import type {
  BulkCreateItem,
  BulkItemResult,
  SearchEngine,
  SearchEngineInfo,
  SearchResult,
} from './engine.js';
import { OpenSearchEngine, type SearchClientOptions } from './opensearch-engine.js';

/** What `GET /` returns on both engines, as far as the choice needs it. */
interface RootResponse {
  version?: { number?: string; distribution?: string };
}

/** The URL with any `user:password@` removed, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return '[invalid URL]';
  }
}

/**
 * Connects to the engine at `url`: fetches `GET /`, then returns the
 * OpenSearch implementation when `version.distribution` is `opensearch`
 * and the Elasticsearch one otherwise. Credentials may be given in the URL
 * (`https://user:password@host:9200`). Rejects when the engine cannot be
 * reached or returns an error.
 */
export async function connectSearchEngine(
  url: string,
  options: SearchClientOptions = {},
): Promise<SearchEngine> {
  const parsed = new URL(url);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (parsed.username !== '') {
    const credentials = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
    headers.authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
    parsed.username = '';
    parsed.password = '';
  }

  const response = await fetch(parsed, {
    headers,
    signal: AbortSignal.timeout(options.requestTimeoutMs ?? 30_000),
  });
  if (!response.ok) {
    throw new Error(
      `Search engine at ${redactUrl(url)} returned HTTP ${response.status} for GET /; check the URL and credentials.`,
    );
  }

  const root = (await response.json()) as RootResponse;
  if (root.version?.distribution === 'opensearch') return new OpenSearchEngine(url, options);

  const major = Number.parseInt(root.version?.number ?? '', 10);
  if (!Number.isInteger(major)) {
    throw new Error(
      `Search engine at ${redactUrl(url)} reported no version number in GET /; is it OpenSearch or Elasticsearch?`,
    );
  }
  return new ElasticsearchEngine(url, { ...options, majorVersion: major });
}

/**
 * Returns a SearchEngine that connects on first use and tries again on later
 * calls while the engine is unreachable, so a collector can start before the
 * engine does. While unconnected, `bulkCreate` returns every item as
 * `retryable`; the other methods reject.
 */
export function lazySearchEngine(url: string, options: SearchClientOptions = {}): SearchEngine {
  let engine: SearchEngine | undefined;
  let connecting: Promise<SearchEngine> | undefined;

  const connected = async (): Promise<SearchEngine> => {
    if (engine) return engine;
    connecting ??= connectSearchEngine(url, options).finally(() => {
      connecting = undefined;
    });
    engine = await connecting;
    return engine;
  };

  return {
    get distribution() {
      if (!engine)
        throw new Error('The search engine is not connected yet, so its distribution is unknown.');
      return engine.distribution;
    },
    info: async (): Promise<SearchEngineInfo> => (await connected()).info(),
    ensureEventTemplate: async (prefix: string) => (await connected()).ensureEventTemplate(prefix),
    bulkCreate: async (items: BulkCreateItem[]): Promise<BulkItemResult[]> => {
      let target: SearchEngine;
      try {
        target = await connected();
      } catch (error) {
        const reason = requestFailureReason(error);
        return items.map(() => ({ status: 'retryable' as const, reason }));
      }
      return target.bulkCreate(items);
    },
    search: async (index: string, body: Record<string, unknown>): Promise<SearchResult> =>
      (await connected()).search(index, body),
    count: async (index: string, query?: Record<string, unknown>) =>
      (await connected()).count(index, query),
    refresh: async (index: string) => (await connected()).refresh(index),
    close: async () => {
      await engine?.close();
    },
  };
}
