import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import type { EcsEvent } from './ecs.js';

/**
 * Helpers shared by the collectors' tests and benchmark: temp dirs, free
 * loopback ports, generated events and index clean-up on a local node.
 */

export async function tempDir(label: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `${label}-`));
}

/** Returns a lowercase index prefix with a random suffix, so test runs do not share indices. */
export function uniquePrefix(label: string): string {
  return `${label}-${crypto.randomBytes(4).toString('hex')}`;
}

/** Returns `count` distinct TCP ports that were free on 127.0.0.1 a moment ago. */
export async function freePorts(count: number): Promise<number[]> {
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

/**
 * Builds a failed ssh login event with id `<label>-<n>`. The time is
 * `n % 1000` seconds after noon on 2026-12-31, plus one day per thousand
 * events, so larger batches span two daily indices.
 */
export function sshFailureEvent(label: string, n: number): EcsEvent {
  const time = new Date(
    Date.UTC(2026, 11, 31, 12, 0, 0) + (n % 1000) * 1000 + Math.floor(n / 1000) * 86_400_000,
  );
  return {
    '@timestamp': time.toISOString(),
    message: `Failed password for invalid user probe${n % 17} from 198.51.100.${n % 250} port ${40000 + (n % 20000)} ssh2`,
    event: {
      kind: 'event',
      id: `${label}-${n}`,
      dataset: 'system.auth',
      module: 'system',
      action: 'ssh_login',
      category: ['authentication'],
      type: ['info'],
      outcome: 'failure',
    },
    user: { name: `probe${n % 17}` },
    source: { ip: `198.51.100.${n % 250}`, port: 40000 + (n % 20000) },
    host: { hostname: 'bastion' },
  };
}

/** Deletes the event indices and the index template of `prefix` on the node at `url`. */
export async function deleteEventIndices(url: string, prefix: string): Promise<void> {
  await fetch(`${url}/${prefix}-events-*?expand_wildcards=all`, { method: 'DELETE' });
  await fetch(`${url}/_index_template/${prefix}-events`, { method: 'DELETE' });
}

/** Waits until `condition` holds, polling every 20 ms; throws `message` after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  timeoutMs: number,
  message: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${message} (waited ${timeoutMs} ms)`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
