import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Local OpenSearch node managed through scripts/search-node.sh. */
export interface SearchNode {
  /** Base URL of the node's HTTP API, such as http://127.0.0.1:9200. */
  readonly url: string;
  /** Builds the launcher if needed, starts the node and waits for yellow or green health. */
  start(): Promise<void>;
  /** Stops the node with SIGTERM, then SIGKILL after the script's timeout. The data dir stays. */
  stop(): Promise<void>;
  /** Returns whether GET /_cluster/health on `url` reports yellow or green. */
  isUp(): Promise<boolean>;
}

export interface SearchNodeOptions {
  /** HTTP port on 127.0.0.1. */
  port: number;
  /** Transport port on 127.0.0.1. Defaults to `port + 100`, as in search-node.sh. */
  transportPort?: number;
  /** Node home with its data, logs and pid file. It persists across stop and start. */
  dataDir: string;
  /** JVM heap size such as `512m` or `1g`, used for both -Xms and -Xmx. Defaults to `1g`. */
  heap?: string;
}

const scriptPath = fileURLToPath(new URL('../search-node.sh', import.meta.url));

// The first start resolves the OpenSearch jars through Maven, which can take minutes. The script
// bounds its own wait for health (SEARCH_NODE_START_TIMEOUT, 120 s by default), so this limit
// only stops a Maven run that hangs.
const startTimeoutMs = 600_000;
// search-node.sh waits up to 60 s after SIGTERM, then sends SIGKILL and waits up to 10 s.
const stopTimeoutMs = 90_000;
const healthTimeoutMs = 2_000;

/**
 * Returns a handle for one node. Every start and stop goes through scripts/search-node.sh, so
 * tests, the appliance CLI and operators start nodes the same way.
 */
export function searchNode(options: SearchNodeOptions): SearchNode {
  assertPort('port', options.port);
  if (options.transportPort !== undefined) assertPort('transportPort', options.transportPort);
  if (options.dataDir.trim() === '') throw new Error('invalid dataDir: expected a non-empty path');

  const url = `http://127.0.0.1:${options.port}`;
  const env = scriptEnv(options);

  return {
    url,
    async start() {
      await runScript('start', env, startTimeoutMs);
    },
    async stop() {
      await runScript('stop', env, stopTimeoutMs);
    },
    async isUp() {
      return isHealthy(url);
    },
  };
}

function assertPort(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new Error(`invalid ${name} [${value}]: expected an integer from 1 to 65535`);
  }
}

/**
 * Builds the script's environment from the options alone, so SEARCH_NODE_* variables of the
 * calling shell do not change which node a handle controls.
 */
function scriptEnv(options: SearchNodeOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.SEARCH_NODE_TRANSPORT_PORT;
  delete env.SEARCH_NODE_HEAP;

  env.SEARCH_NODE_PORT = String(options.port);
  env.SEARCH_NODE_DATA_DIR = options.dataDir;
  if (options.transportPort !== undefined)
    env.SEARCH_NODE_TRANSPORT_PORT = String(options.transportPort);
  if (options.heap !== undefined) env.SEARCH_NODE_HEAP = options.heap;
  return env;
}

function runScript(
  command: 'start' | 'stop',
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [scriptPath, command],
      { env, timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve(stdout);
          return;
        }
        const outcome = error.killed
          ? `timed out after ${timeoutMs} ms`
          : `failed with exit code ${error.code}`;
        const dataDir = env.SEARCH_NODE_DATA_DIR;
        reject(
          new Error(
            `search-node.sh ${command} ${outcome} (data dir ${dataDir}):\n${stderr.trimEnd()}`,
          ),
        );
      },
    );
  });
}

async function isHealthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/_cluster/health`, {
      signal: AbortSignal.timeout(healthTimeoutMs),
    });
    if (!response.ok) return false;

    const health = (await response.json()) as { status?: string };
    return health.status === 'green' || health.status === 'yellow';
  } catch {
    // Connection refused, reset or timed out: no node answers on this port.
    return false;
  }
}
