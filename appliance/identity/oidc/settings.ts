import type { Role } from '../permissions';
import { httpsCallbackUrl, httpsOrLoopbackUrl } from '../setting-urls';
import { parseDefaultRole, parseGroupRoleMap } from './role-mapping';

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
    issuer: httpsOrLoopbackUrl('OIDC_ISSUER', env.OIDC_ISSUER, settingError),
    clientId: required(env, 'OIDC_CLIENT_ID'),
    clientSecret: required(env, 'OIDC_CLIENT_SECRET'),
    redirectUri: env.OIDC_REDIRECT_URI
      ? httpsCallbackUrl('OIDC_REDIRECT_URI', env.OIDC_REDIRECT_URI, settingError)
      : undefined,
    groupRoleMap: parseGroupRoleMap('OIDC_GROUP_ROLE_MAP', env.OIDC_GROUP_ROLE_MAP),
    defaultRole: parseDefaultRole('OIDC_DEFAULT_ROLE', env.OIDC_DEFAULT_ROLE),
    scopes: scopes(env.OIDC_SCOPES),
  };
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new OidcSettingsError(name, 'it is required when OIDC_ISSUER is set.');
  return value;
}

const settingError = (setting: string, problem: string) => new OidcSettingsError(setting, problem);

function scopes(raw: string | undefined): string {
  const list = (raw ?? 'openid profile email groups').split(/\s+/).filter(Boolean);
  if (!list.includes('openid'))
    throw new OidcSettingsError('OIDC_SCOPES', 'it must include openid.');
  return list.join(' ');
}
