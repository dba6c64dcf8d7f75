/**
 * Prompt vault benchmark: prompt creates and reads per second through the
 * HTTPS API, with envelope encryption (ours) and with a plaintext "cipher"
 * (peer), both measured in the same run against two in-process servers on
 * 127.0.0.1 that share one SoftHSM token. Both pay for TLS, sessions, the
 * SQLite write queue and the HSM-signed audit record of every request, so
 * the ratio isolates what sealing, data-key wrapping and opening cost.
 * runSqlcipherBench() compares the same encrypted vault in a SQLCipher file
 * and in a plain SQLite file.
 *
 *   node --import tsx scripts/bench/vault.ts [durationMs]   prints JSON
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import type { KeyProvider } from '../../hsm/key-provider';
import { AuditTrail } from '../../appliance/audit/trail';
import { createApp } from '../../appliance/http/app';
import { identityRoutes } from '../../appliance/identity/routes';
import { IdentityService, initialAdminPasswordFile } from '../../appliance/identity/service';
import type { ApplianceConfig } from '../../appliance/platform/config';
import { openDatabase } from '../../appliance/platform/database';
import { openApplianceDatabase } from '../../appliance/platform/database-encryption';
import { migrate } from '../../appliance/platform/migrations';
import { listenHttps } from '../../appliance/platform/https-server';
import { ApiClient } from '../../appliance/testing/api-client';
import type { PromptEncryption, PromptSealer } from '../../appliance/vault/envelope';
import { vaultRoutes } from '../../appliance/vault/routes';
import { createVault } from '../../appliance/vault/vault';
import { AccessControl } from '../../appliance/identity/access/decision';
import type { BenchResult } from './result';
import { alternate, inBenchDirectory, measure, rateResult } from './phases';

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

/**
 * `encrypted`: field encryption in a plain SQLite file; `plaintext`: no
 * field encryption; `sqlcipher`: field encryption in a SQLCipher file.
 */
type Variant = 'encrypted' | 'plaintext' | 'sqlcipher';

interface BenchServer {
  variant: Variant;
  client: ApiClient;
  promptIds: string[];
  close(): Promise<void>;
}

export async function runVaultBench(options: VaultBenchOptions = {}): Promise<BenchResult[]> {
  return runPair(['encrypted', 'plaintext'], options, {
    ours: 'AES-256-GCM fields, per-prompt data key wrapped by the SoftHSM master key',
    peer: 'same API, database and audit trail with content stored as plaintext',
  });
}

/**
 * SQLCipher cost: the same encrypted vault with its SQLite file encrypted
 * by SQLCipher (ours) and as a plain SQLite file (peer).
 */
export async function runSqlcipherBench(options: VaultBenchOptions = {}): Promise<BenchResult[]> {
  const results = await runPair(['sqlcipher', 'encrypted'], options, {
    ours: 'encrypted vault in a SQLCipher 4 file (raw 256-bit key, one connection per transaction)',
    peer: 'the same encrypted vault in a plain SQLite file',
  });
  return results.map((entry) => ({ ...entry, name: entry.name.replace('vault.', 'sqlcipher.') }));
}

/** Measures prompt creates and reads of two variants in one run; the first variant is ours. */
async function runPair(
  variants: [Variant, Variant],
  options: VaultBenchOptions,
  descriptions: { ours: string; peer: string },
): Promise<BenchResult[]> {
  const settings = {
    durationMs: options.durationMs ?? 5000,
    maxRequests: options.maxRequests ?? 5000,
    concurrency: options.concurrency ?? 8,
    bodyBytes: options.bodyBytes ?? 2048,
  };
  return inBenchDirectory('bench-vault-', async ({ config, keys, servers: opened }) => {
    const servers: BenchServer[] = [];
    for (const variant of variants) {
      servers.push(await startServer(config, keys, variant));
      opened.push(servers[servers.length - 1]);
    }

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

    const pair = { ours: variants[0], peer: variants[1], descriptions };
    return [
      rateResult('vault.prompt.create', creates, pair, settings),
      rateResult('vault.prompt.read', reads, pair, settings),
    ];
  });
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

  const database =
    variant === 'sqlcipher'
      ? await openApplianceDatabase(
          { databaseFile: path.join(dir, 'appliance.sqlite'), secretsDir },
          keys,
        )
      : await openDatabase(path.join(dir, 'appliance.sqlite'));
  await migrate(database);
  const audit = new AuditTrail(database, keys);
  const identity = new IdentityService(database, secretsDir);
  await identity.bootstrapFirstAdmin();
  const access = new AccessControl(database);
  await access.open();
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
    authorizer: access,
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
