import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { searchNode, type SearchNode } from './search-node';

const indexName = 'prompts-under-test';

/** Returns `count` distinct TCP ports that were free on 127.0.0.1 a moment ago. */
async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      servers.push(server);
    }
    return servers.map((server) => (server.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

async function requestJson(
  url: string,
  method: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

/** Runs a match query on `text` and returns the ids of the hits. */
async function searchIds(url: string, text: string): Promise<string[]> {
  const { status, json } = await requestJson(`${url}/${indexName}/_search`, 'POST', {
    query: { match: { text } },
  });
  assert.equal(status, 200, `search returned ${status}: ${JSON.stringify(json)}`);

  const hits = (json.hits as { hits: Array<{ _id: string }> }).hits;
  return hits.map((hit) => hit._id);
}

describe('search node @integration', function () {
  let dataDir: string;
  let node: SearchNode;

  before(async function () {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'search-node-test-'));
    const [port, transportPort] = await freePorts(2);
    node = searchNode({ port, transportPort, dataDir, heap: '512m' });
  });

  after(async function () {
    this.timeout(120_000);
    await node?.stop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('starts and reports health', async function () {
    // The first start on a machine compiles the launcher and resolves the OpenSearch jars.
    this.timeout(600_000);
    await node.start();

    assert.equal(await node.isUp(), true);
    const { json } = await requestJson(`${node.url}/_cluster/health`, 'GET');
    assert.equal(json.cluster_name, 'appliance-search');
    assert.equal(json.number_of_nodes, 1);
  });

  it('start keeps a running node', async function () {
    const pidFile = path.join(dataDir, 'search-node.pid');
    const pidBefore = await fs.readFile(pidFile, 'utf8');

    await node.start();

    assert.equal(await fs.readFile(pidFile, 'utf8'), pidBefore);
    assert.equal(await node.isUp(), true);
  });

  it('loads the bundled plugins', async function () {
    const { json } = await requestJson(`${node.url}/_nodes/plugins`, 'GET');
    const nodes = Object.values(
      json.nodes as Record<string, { plugins: Array<{ classname: string }> }>,
    );
    assert.equal(nodes.length, 1);

    const classnames = nodes[0].plugins.map((plugin) => plugin.classname).sort();
    assert.deepEqual(classnames, [
      'org.opensearch.analysis.common.CommonAnalysisPlugin',
      'org.opensearch.transport.Netty4Plugin',
    ]);
  });

  it('analyzes with analysis-common filters', async function () {
    const { status, json } = await requestJson(`${node.url}/_analyze`, 'POST', {
      tokenizer: 'standard',
      filter: ['lowercase', 'asciifolding'],
      text: 'Crème BRÛLÉE',
    });

    assert.equal(status, 200, `_analyze returned ${status}: ${JSON.stringify(json)}`);
    const tokens = (json.tokens as Array<{ token: string }>).map((t) => t.token);
    assert.deepEqual(tokens, ['creme', 'brulee']);
  });

  it('indexes and searches a document', async function () {
    const created = await requestJson(`${node.url}/${indexName}`, 'PUT', {
      settings: {
        number_of_shards: 1,
        number_of_replicas: 0,
        analysis: {
          analyzer: {
            folded: {
              type: 'custom',
              tokenizer: 'standard',
              filter: ['lowercase', 'asciifolding'],
            },
          },
        },
      },
      mappings: { properties: { text: { type: 'text', analyzer: 'folded' } } },
    });
    assert.equal(
      created.status,
      200,
      `create index returned ${created.status}: ${JSON.stringify(created.json)}`,
    );

    const indexed = await requestJson(
      `${node.url}/${indexName}/_doc/prompt-1?refresh=true`,
      'PUT',
      {
        text: 'Summarise the Crème Brûlée recipe',
      },
    );
    assert.equal(
      indexed.status,
      201,
      `index returned ${indexed.status}: ${JSON.stringify(indexed.json)}`,
    );

    // The query has no accents, so a hit shows that the index analyzer folded them.
    assert.deepEqual(await searchIds(node.url, 'creme brulee'), ['prompt-1']);
    assert.deepEqual(await searchIds(node.url, 'tiramisu'), []);
  });

  it('finds the document after restart', async function () {
    this.timeout(300_000);
    await node.stop();
    assert.equal(await node.isUp(), false);

    await node.start();

    assert.equal(await node.isUp(), true);
    assert.deepEqual(await searchIds(node.url, 'creme brulee'), ['prompt-1']);
  });

  it('stops and removes the pid file', async function () {
    this.timeout(120_000);
    await node.stop();

    assert.equal(await node.isUp(), false);
    await assert.rejects(fs.access(path.join(dataDir, 'search-node.pid')), { code: 'ENOENT' });
  });
});
