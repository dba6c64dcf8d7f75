import { Client, Transport, type TransportOptions } from '@elastic/elasticsearch';

import {
  bulkCreateOperations,
  bulkItemResults,
  requestFailureReason,
  searchResult,
} from './bulk-results.js';
import type {
  BulkCreateItem,
  BulkItemResult,
  SearchEngine,
  SearchEngineInfo,
  SearchResult,
} from './engine.js';
import { eventTemplateBody, eventTemplateName } from './event-template.js';
import type { SearchClientOptions } from './opensearch-engine.js';

export interface ElasticsearchOptions extends SearchClientOptions {
  /** Major version of the server, from its `GET /`. Default 9. */
  majorVersion?: number;
}

/**
 * Builds a transport that asks for REST API compatibility with `major`.
 * The 9.x client sends `compatible-with=9` in Accept and Content-Type, which
 * an Elasticsearch 8 server rejects ("Accept version must be either version
 * 8 or 7"), so for an 8.x server the headers name 8 instead.
 */
function transportFor(major: number): typeof Transport {
  return class CompatibleTransport extends Transport {
    constructor(options: TransportOptions) {
      super({
        ...options,
        vendoredHeaders: {
          jsonContentType: `application/vnd.elasticsearch+json; compatible-with=${major}`,
          ndjsonContentType: `application/vnd.elasticsearch+x-ndjson; compatible-with=${major}`,
          accept: `application/vnd.elasticsearch+json; compatible-with=${major},text/plain`,
        },
      });
    }
  };
}

/** SearchEngine over the Elastic JavaScript client 9.x (Elasticsearch 8 and 9). */
export class ElasticsearchEngine implements SearchEngine {
  readonly distribution = 'elasticsearch' as const;
  private readonly client: Client;

  constructor(url: string, options: ElasticsearchOptions = {}) {
    const major = options.majorVersion ?? 9;
    this.client = new Client({
      node: url,
      // The pipeline owns retries and backoff, so the client gives up at once.
      maxRetries: 0,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      ...(major < 9 ? { Transport: transportFor(major) } : {}),
    });
  }

  async info(): Promise<SearchEngineInfo> {
    const body = await this.client.info();
    return {
      distribution: 'elasticsearch',
      version: body.version.number,
      clusterName: body.cluster_name,
    };
  }

  async ensureEventTemplate(prefix: string): Promise<void> {
    await this.client.indices.putIndexTemplate({
      name: eventTemplateName(prefix),
      ...(eventTemplateBody(prefix) as object),
    });
  }

  async bulkCreate(items: BulkCreateItem[]): Promise<BulkItemResult[]> {
    if (items.length === 0) return [];

    try {
      const body = await this.client.bulk({ operations: bulkCreateOperations(items) });
      return bulkItemResults(body.items, items.length);
    } catch (error) {
      const reason = requestFailureReason(error);
      return items.map(() => ({ status: 'retryable' as const, reason }));
    }
  }

  async search(index: string, body: Record<string, unknown>): Promise<SearchResult> {
    const response = await this.client.search({
      index,
      ignore_unavailable: true,
      allow_no_indices: true,
      track_total_hits: true,
      ...body,
    });
    return searchResult(response);
  }

  async count(index: string, query?: Record<string, unknown>): Promise<number> {
    const body = await this.client.count({
      index,
      ignore_unavailable: true,
      allow_no_indices: true,
      ...(query ? { query } : {}),
    });
    return body.count;
  }

  async refresh(index: string): Promise<void> {
    await this.client.indices.refresh({ index, ignore_unavailable: true, allow_no_indices: true });
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
