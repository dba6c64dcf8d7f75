import { Client } from '@opensearch-project/opensearch';

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

export interface SearchClientOptions {
  /** Time limit of one request, in milliseconds. Default 30000. */
  requestTimeoutMs?: number;
}

/** SearchEngine over the OpenSearch JavaScript client (OpenSearch 1.x to 3.x). */
export class OpenSearchEngine implements SearchEngine {
  readonly distribution = 'opensearch' as const;
  private readonly client: Client;

  constructor(url: string, options: SearchClientOptions = {}) {
    // The pipeline owns retries and backoff, so the client gives up at once.
    this.client = new Client({
      node: url,
      maxRetries: 0,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
    });
  }

  async info(): Promise<SearchEngineInfo> {
    const { body } = await this.client.info();
    return {
      distribution: 'opensearch',
      version: body.version.number,
      clusterName: body.cluster_name,
    };
  }

  async ensureEventTemplate(prefix: string): Promise<void> {
    await this.client.indices.putIndexTemplate({
      name: eventTemplateName(prefix),
      body: eventTemplateBody(prefix),
    });
  }

  async bulkCreate(items: BulkCreateItem[]): Promise<BulkItemResult[]> {
    if (items.length === 0) return [];

    try {
      const { body } = await this.client.bulk({ body: bulkCreateOperations(items) });
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
      body: { track_total_hits: true, ...body },
    });
    return searchResult(response.body);
  }

  async count(index: string, query?: Record<string, unknown>): Promise<number> {
    const { body } = await this.client.count({
      index,
      ignore_unavailable: true,
      allow_no_indices: true,
      ...(query ? { body: { query } } : {}),
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
