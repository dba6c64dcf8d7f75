/**
 * Prompt vault benchmark: prompt creates and reads per second through the
 * HTTPS API, with envelope encryption (ours) and with a plaintext "cipher"
 * (peer), both measured in the same run against two in-process servers on
 * 127.0.0.1 that share one SoftHSM token. Both pay for TLS, sessions, the
 * SQLite write queue and the HSM-signed audit record of every request, so
 * the ratio isolates what sealing, data-key wrapping and opening cost.
 *
 *   node --import tsx scripts/bench/vault.ts [durationMs]   prints JSON
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { ensureToken, openKeyProvider } from '../../hsm';
import type { KeyProvider } from '../../hsm/key-provider';
import { AuditTrail } from '../../appliance/audit/trail';
import { createApp } from '../../appliance/http/app';
import { identityRoutes } from '../../appliance/identity/routes';
import { IdentityService, initialAdminPasswordFile } from '../../appliance/identity/service';
import { loadConfig, type ApplianceConfig } from '../../appliance/platform/config';
import { openDatabase } from '../../appliance/platform/database';
import { logger } from '../../appliance/platform/logger';
import { migrate } from '../../appliance/platform/migrations';
import { listenHttps } from '../../appliance/platform/https-server';
import { ApiClient } from '../../appliance/testing/api-client';
import type { PromptEncryption, PromptSealer } from '../../appliance/vault/envelope';
import { vaultRoutes } from '../../appliance/vault/routes';
import { createVault } from '../../appliance/vault/vault';
import type { BenchResult } from './result';

export interface VaultBenchOptions {
  /** Milliseconds each measured phase may run per variant (default 5000). */
  durationMs?: number;
  /** Maximum requests per phase per variant (default 5000). */
  maxRequests?: number;
  /** Requests in flight at once (default 8). */
  concurrency?: number;
  /** Prompt body size in bytes (default 2048). */
  bodyBytes?: number;
}

/** Stores prompt content as UTF-8 bytes, unsealed. Only this benchmark uses it, as the peer. */
const plaintextSealer: PromptSealer = {
  keyVersion: 0,
  seal: (_location, plaintext) => Buffer.from(plaintext, 'utf8'),
  open: (_location, sealed) => Buffer.from(sealed).toString('utf8'),
};

const plaintextEncryption: PromptEncryption = {
  createKey: () => ({ sealer: plaintextSealer, save: async () => undefined }),
  sealerFor: async () => plaintextSealer,
  close: () => undefined,
};

type Variant = 'encrypted' | 'plaintext';

interface BenchServer {
  variant: Variant;
  client: ApiClient;
  promptIds: string[];
  close(): Promise<void>;
}

interface PhaseTotals {
  requests: number;
  elapsedMs: number;
}

export async function runVaultBench(options: VaultBenchOptions = {}): Promise<BenchResult[]> {
  const settings = {
    durationMs: options.durationMs ?? 5000,
    maxRequests: options.maxRequests ?? 5000,
    concurrency: options.concurrency ?? 8,
    bodyBytes: options.bodyBytes ?? 2048,
  };
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-vault-'));
  const config = loadConfig({ APPLIANCE_DATA_DIR: dataDir, LOG_LEVEL: 'warn' });

  // Per-request info logs would add their own cost to the timings; warnings and errors still show.
  const previousLevel = logger.level;
  logger.level = 'warn';

  ensureToken(config);
  const keys = openKeyProvider(config);
  const servers: BenchServer[] = [];
  try {
    servers.push(await startServer(config, keys, 'encrypted'));
    servers.push(await startServer(config, keys, 'plaintext'));

    const body = 'Summarise the customer ticket below in three bullet points. '
      .repeat(64)
      .slice(0, settings.bodyBytes);
    const create = (server: BenchServer) => async () => {
      const response = await server.client.post('/prompts', {
        title: 'Bench prompt',
        body,
        tags: ['bench'],
      });
      if (response.status !== 201)
        throw new Error(
          `create failed with HTTP ${response.status}: ${JSON.stringify(response.body)}`,
        );
      server.promptIds.push(response.body.id);
    };
    const read = (server: BenchServer) => {
      let next = 0;
      return async () => {
        const id = server.promptIds[next++ % server.promptIds.length];
        const response = await server.client.get(`/prompts/${id}`);
        if (response.status !== 200)
          throw new Error(
            `read failed with HTTP ${response.status}: ${JSON.stringify(response.body)}`,
          );
      };
    };

    // Warm up TLS sessions, statements and the JIT, then alternate the order so neither variant always runs first.
    for (const server of servers)
      await measure(create(server), { ...settings, durationMs: 500, maxRequests: 50 });

    const creates = await alternate(servers, (server) => measure(create(server), settings));
    const reads = await alternate(servers, (server) => measure(read(server), settings));

    return [
      result('vault.prompt.create', creates, settings),
      result('vault.prompt.read', reads, settings),
    ];
  } finally {
    for (const server of servers) await server.close();
    keys.close();
    logger.level = previousLevel;
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Runs `phase` twice per variant in the order encrypted, plaintext, plaintext, encrypted and sums the totals. */
async function alternate(
  servers: BenchServer[],
  phase: (server: BenchServer) => Promise<PhaseTotals>,
): Promise<Record<Variant, PhaseTotals>> {
  const totals: Record<Variant, PhaseTotals> = {
    encrypted: { requests: 0, elapsedMs: 0 },
    plaintext: { requests: 0, elapsedMs: 0 },
  };

  for (const server of [...servers, ...[...servers].reverse()]) {
    const run = await phase(server);
    totals[server.variant].requests += run.requests;
    totals[server.variant].elapsedMs += run.elapsedMs;
  }
  return totals;
}

/** Calls `request` from `concurrency` workers until half the request or time budget is spent. */
async function measure(
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

function result(
  name: string,
  totals: Record<Variant, PhaseTotals>,
  settings: { durationMs: number; maxRequests: number; concurrency: number; bodyBytes: number },
): BenchResult {
  const rate = (phase: PhaseTotals) => (phase.requests * 1000) / phase.elapsedMs;
  const ours = rate(totals.encrypted);
  const peer = rate(totals.plaintext);

  return {
    name,
    ours,
    peer,
    ratio: ours / peer,
    unit: 'requests/s',
    details: {
      ours: 'AES-256-GCM fields, per-prompt data key wrapped by the SoftHSM master key',
      peer: 'same API, database and audit trail with content stored as plaintext',
      requests: { ours: totals.encrypted.requests, peer: totals.plaintext.requests },
      elapsedMs: {
        ours: Math.round(totals.encrypted.elapsedMs),
        peer: Math.round(totals.plaintext.elapsedMs),
      },
      ...settings,
    },
  };
}

/**
 * Starts the API with the identity and vault routes on 127.0.0.1 with its
 * own database, and signs in its first admin.
 */
async function startServer(
  config: ApplianceConfig,
  keys: KeyProvider,
  variant: Variant,
): Promise<BenchServer> {
  const dir = path.join(config.dataDir, variant);
  const secretsDir = path.join(dir, 'secrets');

  const database = await openDatabase(path.join(dir, 'appliance.sqlite'));
  await migrate(database);
  const audit = new AuditTrail(database, keys);
  const identity = new IdentityService(database, secretsDir);
  await identity.bootstrapFirstAdmin();
  const vault = createVault(
    database,
    keys,
    variant === 'plaintext' ? { encryption: plaintextEncryption } : {},
  );

  const app = createApp({
    routes: [...identityRoutes(identity), ...vaultRoutes(vault)],
    database,
    audit,
    authenticate: (request) => identity.authenticate(request),
    maxBodyBytes: config.maxBodyBytes,
  });
  const { server, url, certFile } = await listenHttps(app, {
    tlsDir: path.join(dir, 'tls'),
    host: '127.0.0.1',
    port: 0,
  });
  const client = new ApiClient(url, fs.readFileSync(certFile));
  await signInAdmin(client, secretsDir);

  return {
    variant,
    client,
    promptIds: [],
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await database.close();
      vault.close();
    },
  };
}

async function signInAdmin(client: ApiClient, secretsDir: string): Promise<void> {
  const oneTimePassword = fs
    .readFileSync(path.join(secretsDir, initialAdminPasswordFile), 'utf8')
    .trim();
  const password = 'bench-admin-password-1';

  const login = await client.post('/auth/login', { username: 'admin', password: oneTimePassword });
  if (login.status !== 200) throw new Error(`bench admin sign-in failed with HTTP ${login.status}`);
  const change = await client.post('/auth/password', {
    currentPassword: oneTimePassword,
    newPassword: password,
  });
  if (change.status !== 204)
    throw new Error(`bench admin password change failed with HTTP ${change.status}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const durationMs = process.argv[2] ? Number(process.argv[2]) : undefined;
  if (durationMs !== undefined && !(Number.isInteger(durationMs) && durationMs > 0)) {
    console.error(
      `Invalid durationMs ${JSON.stringify(process.argv[2])}: expected a positive whole number of milliseconds.`,
    );
    process.exit(2);
  }
  console.log(JSON.stringify(await runVaultBench({ durationMs }), null, 2));
}
