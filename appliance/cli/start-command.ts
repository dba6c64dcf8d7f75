import fs from 'node:fs';
import path from 'node:path';

import type { Command } from 'commander';

import { searchNode, type SearchNode } from '../../scripts/lib/search-node';
import { initialAdminPasswordFile } from '../identity/service';
import { loadConfig, repoRoot, type ApplianceConfig } from '../platform/config';
import { logger } from '../platform/logger';
import { startAppliance } from '../runtime';
import { CliError, exitCodes } from './exit-codes';

/** Default heap of the bundled node; ops teams size it with SEARCH_NODE_HEAP. */
const defaultSearchHeap = '1g';

export function registerStartCommand(program: Command): Command {
  return program
    .command('start')
    .description(
      'Start the appliance in the foreground: HSM token, database, search engine, HTTPS API and console. ' +
        'Without SEARCH_URL it starts a bundled OpenSearch node on 127.0.0.1 (port SEARCH_NODE_PORT, default 9200).',
    )
    .action(async () => {
      await start();
    });
}

async function start(): Promise<void> {
  const config = loadOrExplain();
  const node = process.env.SEARCH_URL ? undefined : await startBundledSearchNode(config);

  if (!fs.existsSync(path.join(repoRoot, 'console', 'dist', 'index.html'))) {
    console.warn(
      'appliancectl: console/dist is missing, so only the API is served; build it with `npm run build:console`.',
    );
  }

  const appliance = await startAppliance(config).catch(async (error: unknown) => {
    await node?.stop();
    throw new CliError(
      `the appliance did not start: ${error instanceof Error ? error.message : String(error)}`,
      exitCodes.unavailable,
    );
  });

  const passwordFile = path.join(config.secretsDir, initialAdminPasswordFile);
  console.log(`\nAppliance ready. Console: ${appliance.url}/`);
  console.log(`Its certificate is self-signed: ${path.join(config.tlsDir, 'appliance.crt')}`);
  if (fs.existsSync(passwordFile)) {
    console.log(
      `First sign-in: user "admin" with the one-time password printed by: cat ${passwordFile}`,
    );
  }
  console.log('Stop with Ctrl+C.');

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'stopping');
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

  await appliance.close();
  await node?.stop();
}

function loadOrExplain(): ApplianceConfig {
  try {
    return loadConfig();
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error), exitCodes.usage);
  }
}

/**
 * Starts the bundled node unless one already responds on its port, and points
 * the appliance at it. A node that was already up is left running on stop.
 */
async function startBundledSearchNode(config: ApplianceConfig): Promise<SearchNode | undefined> {
  const port = Number(process.env.SEARCH_NODE_PORT ?? 9200);
  const node = searchNode({
    port,
    dataDir: path.join(config.dataDir, 'search-node'),
    heap: process.env.SEARCH_NODE_HEAP ?? defaultSearchHeap,
  });
  config.search.url = node.url;

  if (await node.isUp()) {
    console.log(`Using the search node already running at ${node.url}`);
    return undefined;
  }

  console.log(
    `Starting the bundled OpenSearch node at ${node.url} (the first start downloads its jars) ...`,
  );
  try {
    await node.start();
  } catch (error) {
    throw new CliError(
      `the bundled OpenSearch node did not start: ${error instanceof Error ? error.message : String(error)}`,
      exitCodes.unavailable,
    );
  }
  return node;
}
