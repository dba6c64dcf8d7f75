/**
 * Index layout of the event store: one index per UTC day,
 * `<prefix>-events-YYYY.MM.DD`, all created from the index template
 * `<prefix>-events` so every day gets the same explicit ECS mappings.
 *
 * IMPORTANT: the index name comes from the event's `@timestamp`, and the
 * document `_id` is deterministic, so the same event always lands on the same
 * index and id. Delivery is exactly-once only while that stays true.
 */

/** Index prefixes are index-name fragments: lowercase, no leading `_`, `-` or `+`. */
const prefixPattern = /^[a-z0-9][a-z0-9._-]{0,100}$/;

/** Throws when `prefix` cannot start an index name. */
export function assertIndexPrefix(prefix: string): void {
  if (!prefixPattern.test(prefix)) {
    throw new Error(
      `Invalid index prefix ${JSON.stringify(prefix)}: use lowercase letters, digits, ".", "_" or "-", starting with a letter or digit.`,
    );
  }
}

export function eventTemplateName(prefix: string): string {
  return `${prefix}-events`;
}

export function eventIndexPattern(prefix: string): string {
  return `${prefix}-events-*`;
}

/** Names the daily index for an event time, taking the day in UTC. */
export function eventIndexName(prefix: string, timestamp: string | Date): string {
  const time = typeof timestamp === 'string' ? new Date(timestamp) : timestamp;
  if (Number.isNaN(time.getTime())) {
    throw new Error(
      `Invalid @timestamp ${JSON.stringify(String(timestamp))}: expected an ISO 8601 date-time.`,
    );
  }

  const year = String(time.getUTCFullYear()).padStart(4, '0');
  const month = String(time.getUTCMonth() + 1).padStart(2, '0');
  const day = String(time.getUTCDate()).padStart(2, '0');
  return `${prefix}-events-${year}.${month}.${day}`;
}

const keyword = { type: 'keyword', ignore_above: 1024 } as const;
const long = { type: 'long' } as const;
const date = { type: 'date' } as const;

/** ECS mappings of every field the collectors write. Other string fields map to keyword. */
export const eventMappings = {
  dynamic: true,
  dynamic_templates: [{ strings_as_keyword: { match_mapping_type: 'string', mapping: keyword } }],
  properties: {
    '@timestamp': date,
    message: { type: 'text' },
    tags: keyword,
    event: {
      properties: {
        kind: keyword,
        category: keyword,
        type: keyword,
        action: keyword,
        outcome: keyword,
        reason: keyword,
        dataset: keyword,
        module: keyword,
        id: keyword,
        timezone: keyword,
        sequence: long,
        ingested: date,
        created: date,
        // ECS keeps the raw line stored but neither indexed nor aggregatable.
        original: { type: 'keyword', index: false, doc_values: false },
      },
    },
    user: {
      properties: {
        name: keyword,
        id: keyword,
        roles: keyword,
        effective: { properties: { name: keyword, id: keyword } },
      },
    },
    source: {
      properties: {
        ip: { type: 'ip' },
        port: long,
        domain: keyword,
        address: keyword,
      },
    },
    host: { properties: { hostname: keyword } },
    process: {
      properties: {
        name: keyword,
        pid: long,
        command_line: { type: 'keyword', ignore_above: 8192, fields: { text: { type: 'text' } } },
        working_directory: keyword,
      },
    },
    log: {
      properties: {
        file: { properties: { path: keyword } },
        offset: long,
        syslog: {
          properties: {
            priority: long,
            facility: { properties: { code: long } },
            severity: { properties: { code: long } },
          },
        },
      },
    },
    http: { properties: { request: { properties: { id: keyword } } } },
    system: {
      properties: {
        auth: {
          properties: {
            ssh: {
              properties: {
                method: keyword,
                signature: keyword,
                invalid_user: { type: 'boolean' },
              },
            },
            pam: {
              properties: { module: keyword, service: keyword, tty: keyword, failures: long },
            },
            sudo: { properties: { tty: keyword } },
          },
        },
      },
    },
    appliance: {
      properties: {
        resource: { properties: { type: keyword, id: keyword } },
        audit: { properties: { hash: keyword, prev_hash: keyword, outcome: keyword } },
      },
    },
  },
};

/**
 * Body of the composable index template (`PUT _index_template/<name>`),
 * the same for OpenSearch 1+ and Elasticsearch 7.8+. `auto_expand_replicas`
 * keeps a single-node engine green and adds a replica once a second node
 * joins.
 */
export function eventTemplateBody(prefix: string): Record<string, unknown> {
  assertIndexPrefix(prefix);
  return {
    index_patterns: [eventIndexPattern(prefix)],
    priority: 200,
    template: {
      settings: { number_of_shards: 1, auto_expand_replicas: '0-1' },
      mappings: eventMappings,
    },
    _meta: { managed_by: 'prompt-bank-appliance collectors', schema: 'ecs 8' },
  };
}
