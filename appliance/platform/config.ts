import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { readOAuthSettings, type OAuthSettings } from '../identity/oauth/settings';
import { readOidcSettings, type OidcSettings } from '../identity/oidc/settings';
import { readSignInSettings, type SignInSettings } from '../identity/risk/settings';
import { readLdapSettings, type LdapSettings } from '../identity/ldap/settings';
import { readScimSettings } from '../identity/scim/settings';
import type { GroupRoleMapping } from '../identity/oidc/role-mapping';
import { readRecoverySettings, type RecoverySettings } from '../identity/recovery/settings';
import { readSamlSettings, type SamlSettings } from '../identity/saml/settings';
import { isRole, roles, type Role } from '../identity/permissions';
import { parseTenantRotationCron } from '../keys/rotation-schedule';

/** Root of the checkout; the default data directory lives below it. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Settings of one appliance process, read from the environment with embedded defaults. */
export interface ApplianceConfig {
  dataDir: string;
  host: string;
  port: number;
  databaseFile: string;
  tlsDir: string;
  secretsDir: string;
  spoolDir: string;
  search: {
    url: string;
    indexPrefix: string;
  };
  hsm: {
    modulePath: string;
    softhsmConf: string;
    tokenLabel: string;
    pinFile: string;
    soPinFile: string;
  };
  /** Cron expression of scheduled tenant key rotation (TENANT_KEY_ROTATION_CRON); null when off. */
  tenantKeyRotationCron: string | null;
  detection: {
    intervalSeconds: number;
    bruteForceThreshold: number;
    bruteForceWindowSeconds: number;
    massReadThreshold: number;
    massReadWindowSeconds: number;
    massReadBaselineFactor: number;
  };
  audit: {
    /** Records appended since the last signed checkpoint that trigger the next one. */
    checkpointRecords: number;
    /** Minutes after the last checkpoint when new records get one even below checkpointRecords. */
    checkpointMinutes: number;
  };
  maxBodyBytes: number;
  /** Open sessions per user; the oldest is closed at the next login beyond it. */
  sessionLimit: number;
  /** A session unused this long ends (idle timeout). */
  sessionIdleMinutes: number;
  /** A session ends this long after sign-in whatever its use (absolute timeout). */
  sessionAbsoluteHours: number;
  access: {
    /** Role, grant and role-definition changes wait for a second admin's approval. */
    changeApproval: boolean;
    /** Base roles whose holders may open break-glass access. */
    breakGlassRoles: Role[];
    /** Maximum break-glass window a user may request, in minutes. */
    breakGlassMaxMinutes: number;
  };
  /** OpenID Connect sign-in; undefined when no OIDC_* setting is given. */
  oidc?: OidcSettings;
  /** LDAP / Active Directory sign-in; undefined when no LDAP_* setting is given. */
  ldap?: LdapSettings;
  /** Group-to-role map of SCIM groups (SCIM_GROUP_ROLE_MAP). */
  scim: GroupRoleMapping;
  /** WebAuthn relying party, device trust and sign-in risk scoring (WEBAUTHN_*, DEVICE_TRUST_DAYS, RISK_*). */
  signIn: SignInSettings;
  /** OAuth 2.0 access and refresh token settings (OAUTH_*); always set, with defaults. */
  oauth: OAuthSettings;
  /** Account recovery by email; undefined when SMTP_HOST is unset. */
  recovery?: RecoverySettings;
  /** SAML 2.0 sign-in; undefined when no SAML_* setting is given. */
  saml?: SamlSettings;
}

function flag(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'on' || raw === 'true') return true;
  if (raw === 'off' || raw === 'false') return false;
  throw new Error(`Invalid ${name}=${JSON.stringify(raw)}: expected on or off.`);
}

function roleList(env: NodeJS.ProcessEnv, name: string, fallback: Role[]): Role[] {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;

  const names = raw.split(',').map((entry) => entry.trim());
  const unknown = names.filter((entry) => !isRole(entry));
  if (unknown.length)
    throw new Error(
      `Invalid ${name}: ${unknown.join(', ')} is not a built-in role; use ${roles.join(', ')}.`,
    );
  return names as Role[];
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;

  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`Invalid ${name}=${JSON.stringify(raw)}: expected a positive whole number.`);
  }
  return value;
}

/** Reads the configuration; every path defaults to a place under APPLIANCE_DATA_DIR. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ApplianceConfig {
  const dataDir = path.resolve(env.APPLIANCE_DATA_DIR ?? path.join(repoRoot, 'var'));
  const secretsDir = path.join(dataDir, 'secrets');

  return {
    dataDir,
    host: env.APPLIANCE_HOST ?? '127.0.0.1',
    port: integer(env, 'APPLIANCE_PORT', 8443),
    databaseFile: env.APPLIANCE_DATABASE ?? path.join(dataDir, 'appliance.sqlite'),
    tlsDir: path.join(dataDir, 'tls'),
    secretsDir,
    spoolDir: path.join(dataDir, 'spool'),
    search: {
      url: env.SEARCH_URL ?? 'http://127.0.0.1:9200',
      indexPrefix: env.SEARCH_INDEX_PREFIX ?? 'appliance',
    },
    hsm: {
      modulePath: env.PKCS11_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so',
      softhsmConf: env.SOFTHSM2_CONF ?? path.join(dataDir, 'softhsm', 'softhsm2.conf'),
      tokenLabel: env.HSM_TOKEN_LABEL ?? 'appliance',
      pinFile: env.HSM_PIN_FILE ?? path.join(secretsDir, 'hsm-user-pin'),
      soPinFile: env.HSM_SO_PIN_FILE ?? path.join(secretsDir, 'hsm-so-pin'),
    },
    tenantKeyRotationCron: parseTenantRotationCron(env.TENANT_KEY_ROTATION_CRON),
    detection: {
      intervalSeconds: integer(env, 'DETECTION_INTERVAL_SECONDS', 15),
      bruteForceThreshold: integer(env, 'BRUTE_FORCE_THRESHOLD', 10),
      bruteForceWindowSeconds: integer(env, 'BRUTE_FORCE_WINDOW_SECONDS', 300),
      massReadThreshold: integer(env, 'MASS_READ_THRESHOLD', 50),
      massReadWindowSeconds: integer(env, 'MASS_READ_WINDOW_SECONDS', 600),
      massReadBaselineFactor: integer(env, 'MASS_READ_BASELINE_FACTOR', 5),
    },
    audit: {
      checkpointRecords: integer(env, 'AUDIT_CHECKPOINT_RECORDS', 1000),
      checkpointMinutes: integer(env, 'AUDIT_CHECKPOINT_MINUTES', 15),
    },
    maxBodyBytes: integer(env, 'APPLIANCE_MAX_BODY_BYTES', 1024 * 1024),
    sessionLimit: integer(env, 'SESSION_LIMIT', 10),
    sessionIdleMinutes: integer(env, 'SESSION_IDLE_MINUTES', 30),
    sessionAbsoluteHours: integer(env, 'SESSION_ABSOLUTE_HOURS', 12),
    access: {
      changeApproval: flag(env, 'ACCESS_CHANGE_APPROVAL', false),
      breakGlassRoles: roleList(env, 'BREAK_GLASS_ROLES', ['admin', 'analyst']),
      breakGlassMaxMinutes: integer(env, 'BREAK_GLASS_MAX_MINUTES', 240),
    },
    oidc: readOidcSettings(env),
    signIn: readSignInSettings(env),
    oauth: readOAuthSettings(env),
    ldap: readLdapSettings(env),
    scim: readScimSettings(env),
    recovery: readRecoverySettings(env),
    saml: readSamlSettings(env),
  };
}
