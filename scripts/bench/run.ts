/**
 * `npm run bench`: runs every benchmark against local parts and prints each
 * result as a ratio to the peer it was measured against in the same run.
 * Benchmarks need a search node; without SEARCH_URL one is started on
 * 127.0.0.1:9260 in a temporary directory and stopped at the end.
 *
 *   npm run bench              all benchmarks
 *   npm run bench -- vault     only those whose name starts with "vault"
 *   npm run bench -- rewrap    the master and tenant key rewrap jobs on 100,000 data keys
 *   npm run bench -- hsm       raw SoftHSM rates, vault crypto and event-loop delay
 *   npm run bench -- sqlcipher the vault with a SQLCipher database file against a plain one
 *   npm run bench -- access    sign-in and an authorised read with and without access control
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { searchNode } from '../lib/search-node';
import type { BenchResult } from './result';
import { runAccessBench } from './access';
import { runCollectorBench } from './collector';
import { runHsmBench } from './hsm';
import { runRewrapBench, runTenantRewrapBench } from './rewrap';
import { runSqlcipherBench, runVaultBench } from './vault';

const filter = process.argv[2] ?? '';

async function main(): Promise<void> {
  const results: BenchResult[] = [];

  if ('vault'.startsWith(filter) || filter.startsWith('vault')) {
    results.push(...(await runVaultBench()));
  }

  if ('sqlcipher'.startsWith(filter) || filter.startsWith('sqlcipher')) {
    results.push(...(await runSqlcipherBench()));
  }

  if ('access'.startsWith(filter) || filter.startsWith('access')) {
    results.push(...(await runAccessBench()));
  }

  if ('hsm'.startsWith(filter) || filter.startsWith('hsm')) {
    results.push(...(await runHsmBench()));
  }

  if ('rewrap'.startsWith(filter) || filter.startsWith('rewrap')) {
    const direct = await runRewrapBench({ dataKeys: 100_000 });
    results.push(direct);
    results.push(...(await runTenantRewrapBench({ dataKeys: 100_000, directRate: direct.ours })));
  }

  if ('collector'.startsWith(filter) || filter.startsWith('collector')) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-search-'));
    const node = process.env.SEARCH_URL
      ? undefined
      : searchNode({ port: 9260, dataDir, heap: process.env.SEARCH_NODE_HEAP ?? '1g' });
    await node?.start();
    try {
      results.push(await runCollectorBench({ searchUrl: process.env.SEARCH_URL ?? node!.url }));
    } finally {
      await node?.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }

  printTable(results);
  console.log(JSON.stringify({ machine: machine(), results }, null, 2));
}

function printTable(results: BenchResult[]): void {
  console.log(
    `${'benchmark'.padEnd(36)} ${'ours'.padStart(12)} ${'peer'.padStart(12)} ${'ratio'.padStart(7)}  unit`,
  );
  for (const result of results) {
    console.log(
      `${result.name.padEnd(36)} ${result.ours.toFixed(1).padStart(12)} ${result.peer.toFixed(1).padStart(12)} ${result.ratio.toFixed(3).padStart(7)}  ${result.unit}`,
    );
  }
}

function machine() {
  return {
    cpu: os.cpus()[0]?.model,
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
  };
}

await main();
