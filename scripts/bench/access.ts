/**
 * Authorisation benchmark: sign-ins and an authorised read per second, with
 * the access-control layer in the path (ours) and with an authoriser that
 * allows everything without loading grants (peer). Both run in one process
 * against two servers on 127.0.0.1 that share one SoftHSM token.
 *
 * The read is GET /folders as an author with three extra grants (a folder
 * scope, a source-range condition and a schedule condition), so each
 * request loads the grants and decides once per folder. Sign-in is a public
 * route: its ratio shows that the layer adds nothing there, and its rate is
 * bounded by argon2id.
 *
 *   node --import tsx scripts/bench/access.ts [durationMs]   prints JSON
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { QueryTypes } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import { AuditTrail } from '../../appliance/audit/trail';
import { createApp } from '../../appliance/http/app';
import type { Authorizer } from '../../appliance/http/route';
import { AccessControl, AccessView } from '../../appliance/identity/access/decision';
import { applianceScope } from '../../appliance/identity/access/scope';
import { permissionNames } from '../../appliance/identity/permissions';
import { identityRoutes } from '../../appliance/identity/routes';
import { IdentityService, initialAdminPasswordFile } from '../../appliance/identity/service';
import type { ApplianceConfig } from '../../appliance/platform/config';
import { openDatabase, type Database } from '../../appliance/platform/database';
import { listenHttps } from '../../appliance/platform/https-server';
import { migrate } from '../../appliance/platform/migrations';
import { ApiClient } from '../../appliance/testing/api-client';
import { vaultRoutes } from '../../appliance/vault/routes';
import { createVault } from '../../appliance/vault/vault';
import { alternate, inBenchDirectory, measure, rateResult } from './phases';
import type { BenchResult } from './result';

type Variant = 'authorised' | 'open';

interface AccessServer {
  variant: Variant;
  url: string;
  ca: Buffer;
  /** The author's signed-in client. */
  author: ApiClient;
  close(): Promise<void>;
}

const authorPassword = 'bench-author-password-1';
const adminPassword = 'bench-admin-password-1';

/** Allows every permission at every scope, without reading grants: the peer. */
const allowAll: Authorizer = {
  viewFor: async (subject, attributes) =>
    new AccessView(subject, attributes, [
      {
        id: 'bench-allow-all',
        source: 'base-role',
        role: null,
        permissions: new Set(permissionNames),
        scope: applianceScope,
        conditions: [],
        expiresAt: null,
      },
    ]),
};

export async function runAccessBench(
  options: {
    durationMs?: number;
    maxRequests?: number;
    concurrency?: number;
    folders?: number;
  } = {},
): Promise<BenchResult[]> {
  const settings = {
    durationMs: options.durationMs ?? 5000,
    maxRequests: options.maxRequests ?? 5000,
    concurrency: options.concurrency ?? 8,
    folders: options.folders ?? 20,
  };
  return inBenchDirectory('bench-access-', async ({ config, keys, servers: opened }) => {
    const servers: AccessServer[] = [];
    for (const variant of ['authorised', 'open'] as const) {
      servers.push(await startServer(config, keys, variant, settings.folders));
      opened.push(servers[servers.length - 1]);
    }

    const signIn = (server: AccessServer) => async () => {
      const response = await new ApiClient(server.url, server.ca).post('/auth/login', {
        username: 'bench-author',
        password: authorPassword,
      });
      if (response.status !== 200) throw new Error(`sign-in failed with HTTP ${response.status}`);
    };
    const listFolders = (server: AccessServer) => async () => {
      const response = await server.author.get('/folders');
      if (response.status !== 200 || response.body.items.length !== settings.folders)
        throw new Error(`folder list failed with HTTP ${response.status}`);
    };

    for (const server of servers)
      await measure(listFolders(server), { ...settings, durationMs: 500, maxRequests: 50 });

    const reads = await alternate(servers, (server) => measure(listFolders(server), settings));

    // Sign-ins come last: each opens a session, and beyond the session limit the
    // author's reading session would be closed. Argon2id bounds their rate, so a
    // smaller budget keeps the run short.
    const logins = await alternate(servers, (server) =>
      measure(signIn(server), { ...settings, maxRequests: Math.min(settings.maxRequests, 400) }),
    );

    const pair = {
      ours: 'authorised',
      peer: 'open',
      descriptions: {
        ours: 'AccessControl: base role plus three grants loaded from SQLite, decided per folder',
        peer: 'an authoriser that allows everything without reading grants',
      },
    };
    return [
      rateResult('access.sign-in', logins, pair, settings),
      rateResult('access.folders.list', reads, pair, settings),
    ];
  });
}

/** Starts identity and vault routes with their own database; seeds folders, an author and grants. */
async function startServer(
  config: ApplianceConfig,
  keys: KeyProvider,
  variant: Variant,
  folderCount: number,
): Promise<AccessServer> {
  const dir = path.join(config.dataDir, variant);
  const secretsDir = path.join(dir, 'secrets');
  const database = await openDatabase(path.join(dir, 'appliance.sqlite'));
  await migrate(database);

  const audit = new AuditTrail(database, keys);
  const identity = new IdentityService(database, secretsDir);
  await identity.bootstrapFirstAdmin();
  const access = new AccessControl(database);
  await access.open();
  const vault = createVault(database, keys);

  const app = createApp({
    routes: [...identityRoutes(identity), ...vaultRoutes(vault)],
    database,
    audit,
    authenticate: (request) => identity.authenticate(request),
    authorizer: variant === 'authorised' ? access : allowAll,
    maxBodyBytes: config.maxBodyBytes,
  });
  const { server, url, certFile } = await listenHttps(app, {
    tlsDir: path.join(dir, 'tls'),
    host: '127.0.0.1',
    port: 0,
  });
  const ca = fs.readFileSync(certFile);

  const admin = new ApiClient(url, ca);
  await signInFirstAdmin(admin, secretsDir);
  const folderIds: string[] = [];
  for (let index = 0; index < folderCount; index += 1)
    folderIds.push((await admin.post('/folders', { name: `Folder ${index}` })).body.id);
  const initial = 'bench-initial-password-1';
  await admin.post('/users', { username: 'bench-author', password: initial, role: 'author' });
  const author = new ApiClient(url, ca);
  await expectOk(author.post('/auth/login', { username: 'bench-author', password: initial }));
  await expectOk(
    author.post('/auth/password', { currentPassword: initial, newPassword: authorPassword }),
  );
  await seedGrants(access, database, folderIds[0]);

  return {
    variant,
    url,
    ca,
    author,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await database.close();
      vault.close();
    },
  };
}

async function seedGrants(
  access: AccessControl,
  database: Database,
  folderId: string,
): Promise<void> {
  const [author] = await database.sequelize.query<{ id: string }>(
    "SELECT id FROM users WHERE username = 'bench-author'",
    { type: QueryTypes.SELECT },
  );
  const grant = {
    userId: author.id,
    permissions: null,
    source: 'grant' as const,
    grantedBy: null,
    justification: null,
    expiresAt: null,
  };
  await database.write(async (transaction) => {
    await access.roles.create(
      { name: 'key-watcher', description: '', permissions: ['keys:read'], inherits: ['auditor'] },
      author.id,
      transaction,
    );
    await access.grants.create(
      { ...grant, role: 'author', scope: { type: 'folder', id: folderId }, conditions: null },
      transaction,
    );
    await access.grants.create(
      {
        ...grant,
        role: 'key-watcher',
        scope: applianceScope,
        conditions: { sourceIps: ['127.0.0.0/8', '::1/128'] },
      },
      transaction,
    );
    await access.grants.create(
      {
        ...grant,
        role: 'analyst',
        scope: applianceScope,
        conditions: { schedule: { from: '00:00', to: '23:59', timeZone: 'UTC' } },
      },
      transaction,
    );
  });
}

async function signInFirstAdmin(client: ApiClient, secretsDir: string): Promise<void> {
  const oneTimePassword = fs
    .readFileSync(path.join(secretsDir, initialAdminPasswordFile), 'utf8')
    .trim();
  await expectOk(client.post('/auth/login', { username: 'admin', password: oneTimePassword }));
  await expectOk(
    client.post('/auth/password', { currentPassword: oneTimePassword, newPassword: adminPassword }),
  );
}

async function expectOk(pending: Promise<{ status: number }>): Promise<void> {
  const response = await pending;
  if (response.status >= 300) throw new Error(`bench setup failed with HTTP ${response.status}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const durationMs = process.argv[2] ? Number(process.argv[2]) : undefined;
  if (durationMs !== undefined && !(Number.isInteger(durationMs) && durationMs > 0)) {
    console.error(
      `Invalid durationMs ${JSON.stringify(process.argv[2])}: expected a positive whole number of milliseconds.`,
    );
    process.exit(2);
  }
  console.log(JSON.stringify(await runAccessBench({ durationMs }), null, 2));
}
