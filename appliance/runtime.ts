import fs from 'node:fs';

import { ensureToken, openKeyProvider } from '../hsm';
import type { KeyProvider } from '../hsm/key-provider';
import { AuditForwarder } from './audit/forwarder';
import { checkpointRoutes } from './audit/checkpoints-routes';
import { CheckpointingAuditTrail } from './audit/checkpoints-trail';
import { auditRoutes } from './audit/routes';
import type { AuditTrail } from './audit/trail';
import { createApp } from './http/app';
import { runHealthChecks, type HealthReport } from './http/health';
import type { RouteSpec } from './http/route';
import { identityRoutes } from './identity/routes';
import { accountRecoveryRoutes } from './identity/recovery';
import { openAccessControl } from './identity/access';
import { eventIndexPattern } from '../collectors/search/event-template';
import { oidcRoutes } from './identity/oidc/routes';
import { ldapRoutes } from './identity/ldap/routes';
import { scimRoutes } from './identity/scim/routes';
import { oauthRoutes } from './identity/oauth/routes';
import { samlRoutes } from './identity/saml/routes';
import { keyRoutes } from './keys/routes';
import { activeMasterKey } from './keys/master-key-versions';
import { KeyInventory } from './keys/service';
import { IdentityService } from './identity/service';
import type { ApplianceConfig } from './platform/config';
import type { Database } from './platform/database';
import { openApplianceDatabase } from './platform/database-encryption';
import { logger } from './platform/logger';
import { migrate } from './platform/migrations';
import { listenHttps } from './platform/https-server';
import { vaultRoutes } from './vault/routes';
import { escrowAtCreation } from './recovery/escrow';
import { createVault } from './vault/vault';
import { connectEvents, type EventServices } from './events';
import { openTenants } from './tenants';
import { configureSignIn } from './identity/risk/sign-in-guards';

/** A started appliance; `close` stops its server and background jobs in order. */
export interface RunningAppliance {
  readonly url: string;
  readonly config: ApplianceConfig;
  readonly database: Database;
  readonly keys: KeyProvider;
  readonly audit: AuditTrail;
  readonly identity: IdentityService;
  readonly events?: EventServices;
  /** Every mounted API route, for checks that must cover all of them (the authorisation matrix). */
  readonly routes: readonly RouteSpec[];
  close(): Promise<void>;
}

export interface StartOptions {
  /** Connect to the search engine and run the audit forwarder and detections (default true). */
  search?: boolean;
  /** Listen on this port instead of the configured one; 0 picks a free port. */
  port?: number;
}

/**
 * Opens the HSM, the database and the search engine, then serves the API and
 * console over HTTPS (TLS 1.3 minimum) on the configured loopback address.
 */
export async function startAppliance(
  config: ApplianceConfig,
  options: StartOptions = {},
): Promise<RunningAppliance> {
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });

  const token = await ensureToken(config);
  logger.info(
    { token: { createdToken: token.createdToken, createdKeys: token.createdKeys } },
    'HSM token ready',
  );
  const keys = openKeyProvider(config);

  const database = await openApplianceDatabase(config, keys);
  const applied = await migrate(database);
  if (applied.length) logger.info({ migrations: applied }, 'database migrated');

  const audit = new CheckpointingAuditTrail(database, keys, {
    records: config.audit.checkpointRecords,
    minutes: config.audit.checkpointMinutes,
  });
  const keyInventory = await KeyInventory.open(config, database, keys, token, audit);
  const identity = new IdentityService(database, config.secretsDir, keys, {
    sessionLimit: config.sessionLimit,
    sessionIdleMinutes: config.sessionIdleMinutes,
    sessionAbsoluteHours: config.sessionAbsoluteHours,
    oauth: config.oauth,
  });
  configureSignIn(identity, database, config.signIn);
  const access = await openAccessControl(
    config,
    database,
    keys,
    identity,
    eventIndexPattern(config.search.indexPrefix),
  );
  const bootstrap = await identity.bootstrapFirstAdmin();
  if (bootstrap.created)
    logger.info(
      { passwordFile: bootstrap.passwordFile },
      'first admin created with a one-time password',
    );

  const events =
    options.search === false ? undefined : await connectEvents(config, database, audit);
  const forwarder = events ? new AuditForwarder(database, audit, events.auditSink) : undefined;

  const tenants = await openTenants(config, database, keys, escrowAtCreation(database));
  keyInventory.attachTenants(tenants.keySource);
  const vault = createVault(database, keys, { encryption: tenants.encryption });
  const routes: RouteSpec[] = [
    ...identityRoutes(identity, { accessChanges: access.changes }),
    ...access.routes,
    ...accountRecoveryRoutes(identity, config, database, audit),
    ...oidcRoutes(identity, config, database),
    ...ldapRoutes(identity, config, database),
    ...scimRoutes(identity, config, database),
    ...oauthRoutes(identity.oauth),
    ...samlRoutes(identity, config, database),
    ...auditRoutes(audit),
    ...checkpointRoutes(audit.checkpoints, keys),
    ...vaultRoutes(vault),
    ...keyRoutes(keyInventory),
    ...tenants.routes,
    ...(events?.routes ?? []),
  ];
  const app = createApp({
    routes,
    database,
    audit,
    authenticate: (request) => identity.authenticate(request),
    authorizer: access.control,
    maxBodyBytes: config.maxBodyBytes,
    health: () => checkHealth(keys, database, events),
  });

  const { server, url } = await listenHttps(app, {
    tlsDir: config.tlsDir,
    host: config.host,
    port: options.port ?? config.port,
  });

  audit.start();
  access.start(audit);
  forwarder?.start();
  events?.start();
  logger.info({ url }, 'appliance listening');

  return {
    url,
    config,
    database,
    keys,
    audit,
    identity,
    events,
    routes,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      access.stop();
      await audit.stop();
      await forwarder?.stop();
      await events?.stop();
      await keyInventory.stop();
      await database.close();
      vault.close();
      tenants.close();
      keys.close();
    },
  };
}

/** Checks the HSM session, the database and, when connected, the search engine. */
function checkHealth(
  keys: KeyProvider,
  database: Database,
  events: EventServices | undefined,
): Promise<HealthReport> {
  return runHealthChecks({
    hsm: async () => {
      // The active version comes from key_versions, so a deleted key of the current version reports down.
      const active = await activeMasterKey(database, keys).catch(() => undefined);
      const health = keys.health(active?.keyUri);
      return health.ok
        ? { status: 'up' }
        : {
            status: 'down',
            detail: health.detail ?? `token "${health.tokenLabel}" is not logged in`,
          };
    },
    database: async () => {
      await database.sequelize.query('SELECT 1');
      return { status: 'up' };
    },
    ...(events
      ? {
          search: async () => {
            const info = await events.engine.info();
            return { status: 'up', detail: `${info.distribution} ${info.version}` };
          },
        }
      : {}),
  });
}
