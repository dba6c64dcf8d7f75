import net from 'node:net';

/** WebAuthn relying-party settings, read from the WEBAUTHN_* environment variables. */
export interface WebAuthnSettings {
  /** Relying-party id: the domain the credentials are scoped to. */
  rpId: string;
  /** Name authenticators show to the user at registration. */
  rpName: string;
  /** Accepted origins; undefined means `https://<rpId>:<port the request arrived on>`. */
  origins?: string[];
}

/** Thrown at start-up for a bad WEBAUTHN_* setting; the message names the setting and the fix. */
export class WebAuthnSettingsError extends Error {
  constructor(setting: string, problem: string) {
    super(`Invalid ${setting}: ${problem}`);
    this.name = 'WebAuthnSettingsError';
  }
}

/**
 * Reads WEBAUTHN_RP_ID, WEBAUTHN_RP_NAME and WEBAUTHN_ORIGIN. The RP id
 * defaults to APPLIANCE_HOST, except that an IP address becomes `localhost`,
 * because a WebAuthn RP id must be a domain name, not an IP address.
 */
export function readWebAuthnSettings(env: NodeJS.ProcessEnv): WebAuthnSettings {
  const host = (env.APPLIANCE_HOST ?? '127.0.0.1').replace(/^\[|\]$/g, '');
  const rpId = (env.WEBAUTHN_RP_ID || (net.isIP(host) ? 'localhost' : host)).toLowerCase();
  if (net.isIP(rpId) || !/^[a-z0-9.-]+$/.test(rpId))
    throw new WebAuthnSettingsError(
      'WEBAUTHN_RP_ID',
      `"${rpId}" is not a domain name; set it to the host name users type in the browser, such as appliance.example.internal.`,
    );

  return {
    rpId,
    rpName: env.WEBAUTHN_RP_NAME || 'Prompt bank appliance',
    origins: env.WEBAUTHN_ORIGIN ? parseOrigins(env.WEBAUTHN_ORIGIN, rpId) : undefined,
  };
}

function parseOrigins(raw: string, rpId: string): string[] {
  return raw.split(',').map((entry) => {
    let url: URL;
    try {
      url = new URL(entry.trim());
    } catch {
      throw new WebAuthnSettingsError('WEBAUTHN_ORIGIN', `"${entry}" is not a URL.`);
    }
    if (url.protocol !== 'https:')
      throw new WebAuthnSettingsError('WEBAUTHN_ORIGIN', `"${entry}" must use https.`);
    if (url.hostname !== rpId && !url.hostname.endsWith(`.${rpId}`))
      throw new WebAuthnSettingsError(
        'WEBAUTHN_ORIGIN',
        `the host of "${entry}" must be ${rpId} or one of its subdomains (WEBAUTHN_RP_ID).`,
      );
    return url.origin;
  });
}

/** Returns the origins a WebAuthn response may come from, for a request that arrived on `localPort`. */
export function expectedOrigins(
  settings: WebAuthnSettings,
  localPort: number | undefined,
): string[] {
  if (settings.origins) return settings.origins;
  const port = localPort && localPort !== 443 ? `:${localPort}` : '';
  return [`https://${settings.rpId}${port}`];
}
