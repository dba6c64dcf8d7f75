/**
 * Shared timing of the HTTP benchmarks: a phase runs a request from a few
 * concurrent workers within a time and request budget, and two variants
 * alternate A, B, B, A so neither always runs first on a warming machine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ensureToken, openKeyProvider } from '../../hsm';
import type { KeyProvider } from '../../hsm/key-provider';
import { loadConfig, type ApplianceConfig } from '../../appliance/platform/config';
import { logger } from '../../appliance/platform/logger';
import type { BenchResult } from './result';

export interface PhaseTotals {
  requests: number;
  elapsedMs: number;
}

/** Runs `phase` twice per variant in the order A, B, B, A and sums the totals. */
export async function alternate<S extends { variant: string }>(
  servers: S[],
  phase: (server: S) => Promise<PhaseTotals>,
): Promise<Record<string, PhaseTotals>> {
  const totals: Record<string, PhaseTotals> = {};
  for (const server of servers) totals[server.variant] = { requests: 0, elapsedMs: 0 };

  for (const server of [...servers, ...[...servers].reverse()]) {
    const run = await phase(server);
    totals[server.variant]!.requests += run.requests;
    totals[server.variant]!.elapsedMs += run.elapsedMs;
  }
  return totals;
}

/** Calls `request` from `concurrency` workers until half the request or time budget is spent. */
export async function measure(
  request: () => Promise<void>,
  settings: { durationMs: number; maxRequests: number; concurrency: number },
): Promise<PhaseTotals> {
  const maxRequests = Math.max(1, Math.floor(settings.maxRequests / 2));
  const deadline = performance.now() + settings.durationMs / 2;
  const started = performance.now();
  let issued = 0;

  const worker = async () => {
    while (issued < maxRequests && performance.now() < deadline) {
      issued += 1;
      await request();
    }
  };
  await Promise.all(Array.from({ length: settings.concurrency }, worker));

  return { requests: issued, elapsedMs: performance.now() - started };
}

/** Turns the totals of two variants into one result: ours over the peer's requests per second. */
export function rateResult(
  name: string,
  totals: Record<string, PhaseTotals>,
  pair: { ours: string; peer: string; descriptions: { ours: string; peer: string } },
  settings: Record<string, unknown>,
): BenchResult {
  const rate = (phase: PhaseTotals) => (phase.requests * 1000) / phase.elapsedMs;
  const ours = totals[pair.ours]!;
  const peer = totals[pair.peer]!;

  return {
    name,
    ours: rate(ours),
    peer: rate(peer),
    ratio: rate(ours) / rate(peer),
    unit: 'requests/s',
    details: {
      ...pair.descriptions,
      requests: { ours: ours.requests, peer: peer.requests },
      elapsedMs: { ours: Math.round(ours.elapsedMs), peer: Math.round(peer.elapsedMs) },
      ...settings,
    },
  };
}

/** The setup `inBenchDirectory` gives a benchmark: settings, the token and a list of servers to close. */
export interface BenchSetup {
  config: ApplianceConfig;
  keys: KeyProvider;
  /** Servers the benchmark starts; each is closed at the end, in order. */
  servers: { close(): Promise<void> }[];
}

/**
 * Runs `work` in a fresh data directory with its own SoftHSM token, logging
 * at warn level (per-request info logs would add their own cost to the
 * timings), then closes the servers and the token and removes the directory.
 */
export async function inBenchDirectory<T>(
  prefix: string,
  work: (setup: BenchSetup) => Promise<T>,
): Promise<T> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const config = loadConfig({ APPLIANCE_DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
  const previousLevel = logger.level;
  logger.level = 'warn';

  await ensureToken(config);
  const setup: BenchSetup = { config, keys: openKeyProvider(config), servers: [] };
  try {
    return await work(setup);
  } finally {
    for (const server of setup.servers) await server.close();
    setup.keys.close();
    logger.level = previousLevel;
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
