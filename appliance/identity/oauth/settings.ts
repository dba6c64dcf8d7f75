/** OAuth 2.0 token settings, read from the OAUTH_* environment variables. */
export interface OAuthSettings {
  /** `iss` of every access token the appliance issues, and the only issuer it accepts. */
  issuer: string;
  /** `aud` of every access token; bearer tokens with another audience are rejected. */
  audience: string;
  /** Lifetime of an access token in seconds. */
  accessTokenTtlSeconds: number;
  /** Lifetime of one refresh token in seconds; each rotation issues a new one with this lifetime. */
  refreshTokenTtlSeconds: number;
  /** Lifetime of a refresh token family in seconds, counted from the sign-in that created it. */
  refreshFamilyTtlSeconds: number;
}

export const defaultOAuthSettings: OAuthSettings = {
  issuer: 'urn:prompt-bank-appliance',
  audience: 'urn:prompt-bank-appliance:api',
  accessTokenTtlSeconds: 300,
  refreshTokenTtlSeconds: 24 * 60 * 60,
  refreshFamilyTtlSeconds: 30 * 24 * 60 * 60,
};

/** Maximum access token lifetime accepted from the environment: one hour. */
const maxAccessTokenTtlSeconds = 60 * 60;

/** Thrown at start-up for a bad OAUTH_* setting; the message names the setting and the fix. */
export class OAuthSettingsError extends Error {
  constructor(setting: string, problem: string) {
    super(`Invalid ${setting}: ${problem}`);
    this.name = 'OAuthSettingsError';
  }
}

/** Reads the OAUTH_* settings; every one is optional and falls back to defaultOAuthSettings. */
export function readOAuthSettings(env: NodeJS.ProcessEnv): OAuthSettings {
  const accessTokenTtlSeconds = seconds(
    env,
    'OAUTH_ACCESS_TOKEN_TTL_SECONDS',
    defaultOAuthSettings.accessTokenTtlSeconds,
  );
  if (accessTokenTtlSeconds > maxAccessTokenTtlSeconds)
    throw new OAuthSettingsError(
      'OAUTH_ACCESS_TOKEN_TTL_SECONDS',
      `${accessTokenTtlSeconds} is above the maximum of ${maxAccessTokenTtlSeconds}; access tokens cannot be revoked one by one, so keep them short.`,
    );

  const refreshTokenTtlSeconds = seconds(
    env,
    'OAUTH_REFRESH_TOKEN_TTL_SECONDS',
    defaultOAuthSettings.refreshTokenTtlSeconds,
  );
  const refreshFamilyTtlSeconds = seconds(
    env,
    'OAUTH_REFRESH_FAMILY_TTL_SECONDS',
    defaultOAuthSettings.refreshFamilyTtlSeconds,
  );
  if (refreshTokenTtlSeconds > refreshFamilyTtlSeconds)
    throw new OAuthSettingsError(
      'OAUTH_REFRESH_TOKEN_TTL_SECONDS',
      `${refreshTokenTtlSeconds} is above OAUTH_REFRESH_FAMILY_TTL_SECONDS (${refreshFamilyTtlSeconds}); lower it or raise the family lifetime.`,
    );

  return {
    issuer: text(env, 'OAUTH_ISSUER', defaultOAuthSettings.issuer),
    audience: text(env, 'OAUTH_AUDIENCE', defaultOAuthSettings.audience),
    accessTokenTtlSeconds,
    refreshTokenTtlSeconds,
    refreshFamilyTtlSeconds,
  };
}

function seconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;

  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0)
    throw new OAuthSettingsError(
      name,
      `${JSON.stringify(raw)} is not a positive whole number of seconds.`,
    );
  return value;
}

function text(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw.trim() !== raw || raw.length > 256)
    throw new OAuthSettingsError(
      name,
      'use at most 256 characters without leading or trailing spaces.',
    );
  return raw;
}
