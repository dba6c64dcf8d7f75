import { isRole, roles, type Role } from '../permissions';

/** OpenID Connect sign-in settings, read from the OIDC_* environment variables. */
export interface OidcSettings {
  /** The provider's issuer identifier; its discovery document lives below it. */
  issuer: URL;
  clientId: string;
  clientSecret: string;
  /** Callback URL the provider redirects the browser to; undefined means `<appliance url>/api/v1/auth/oidc/callback`. */
  redirectUri?: URL;
  /** Provider group name → local role. */
  groupRoleMap: Readonly<Record<string, Role>>;
  /** Role of a user in no mapped group; undefined denies such users. */
  defaultRole?: Role;
  /** Scopes asked for at the provider, space separated, always including `openid`. */
  scopes: string;
}

const loopbackHosts = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** Thrown at start-up for a bad OIDC_* setting; the message names the setting and the fix. */
export class OidcSettingsError extends Error {
  constructor(setting: string, problem: string) {
    super(`Invalid ${setting}: ${problem}`);
    this.name = 'OidcSettingsError';
  }
}

/**
 * Reads the OIDC_* settings. Returns undefined when none is set (OIDC sign-in
 * off); any OIDC_* setting without OIDC_ISSUER is an error, not a silent no-op.
 */
export function readOidcSettings(env: NodeJS.ProcessEnv): OidcSettings | undefined {
  const given = Object.keys(env).filter((name) => name.startsWith('OIDC_') && env[name] !== '');
  if (!given.length) return undefined;
  if (!env.OIDC_ISSUER)
    throw new OidcSettingsError(
      'OIDC_ISSUER',
      `it is required when ${given.join(', ')} is set; set it to the provider's issuer URL.`,
    );

  return {
    issuer: issuerUrl(env.OIDC_ISSUER),
    clientId: required(env, 'OIDC_CLIENT_ID'),
    clientSecret: required(env, 'OIDC_CLIENT_SECRET'),
    redirectUri: env.OIDC_REDIRECT_URI ? redirectUrl(env.OIDC_REDIRECT_URI) : undefined,
    groupRoleMap: groupRoleMap(env.OIDC_GROUP_ROLE_MAP),
    defaultRole: defaultRole(env.OIDC_DEFAULT_ROLE),
    scopes: scopes(env.OIDC_SCOPES),
  };
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new OidcSettingsError(name, 'it is required when OIDC_ISSUER is set.');
  return value;
}

/** The issuer must be https; plain http is accepted only on a loopback address (a provider on the same host). */
function issuerUrl(raw: string): URL {
  const url = parseUrl('OIDC_ISSUER', raw);
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && loopbackHosts.has(url.hostname)) return url;
  throw new OidcSettingsError(
    'OIDC_ISSUER',
    `${JSON.stringify(raw)} must use https (http only on 127.0.0.1, [::1] or localhost).`,
  );
}

function redirectUrl(raw: string): URL {
  const url = parseUrl('OIDC_REDIRECT_URI', raw);
  if (url.protocol !== 'https:' || url.hash)
    throw new OidcSettingsError(
      'OIDC_REDIRECT_URI',
      `${JSON.stringify(raw)} must be an https URL without a #fragment.`,
    );
  return url;
}

function parseUrl(name: string, raw: string): URL {
  try {
    return new URL(raw);
  } catch {
    throw new OidcSettingsError(name, `${JSON.stringify(raw)} is not an absolute URL.`);
  }
}

function groupRoleMap(raw: string | undefined): Record<string, Role> {
  if (!raw) return {};

  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new OidcSettingsError(
      'OIDC_GROUP_ROLE_MAP',
      'it is not valid JSON; write an object such as {"soc-analysts": "analyst"}.',
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new OidcSettingsError(
      'OIDC_GROUP_ROLE_MAP',
      'it must be a JSON object of group name to role, such as {"soc-analysts": "analyst"}.',
    );

  const map: Record<string, Role> = {};
  for (const [group, role] of Object.entries(parsed)) {
    if (!isRole(role))
      throw new OidcSettingsError(
        'OIDC_GROUP_ROLE_MAP',
        `group ${JSON.stringify(group)} maps to ${JSON.stringify(role)}; use one of ${roles.join(', ')}.`,
      );
    map[group] = role;
  }
  return map;
}

function defaultRole(raw: string | undefined): Role | undefined {
  if (!raw || raw === 'none') return undefined;
  if (isRole(raw)) return raw;
  throw new OidcSettingsError(
    'OIDC_DEFAULT_ROLE',
    `${JSON.stringify(raw)} is not a role; use none or one of ${roles.join(', ')}.`,
  );
}

function scopes(raw: string | undefined): string {
  const list = (raw ?? 'openid profile email groups').split(/\s+/).filter(Boolean);
  if (!list.includes('openid'))
    throw new OidcSettingsError('OIDC_SCOPES', 'it must include openid.');
  return list.join(' ');
}
