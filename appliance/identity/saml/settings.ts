import crypto from 'node:crypto';
import fs from 'node:fs';

import { parseDefaultRole, parseGroupRoleMap, type GroupRoleMapping } from '../oidc/role-mapping';
import { httpsCallbackUrl, httpsOrLoopbackUrl } from '../setting-urls';

/** SAML 2.0 sign-in settings, read from the SAML_* environment variables. */
export interface SamlSettings extends GroupRoleMapping {
  /** The identity provider's single sign-on endpoint for the HTTP-Redirect binding. */
  idpSsoUrl: URL;
  /** PEM certificate whose key must sign the response or the assertion. */
  idpCertificate: string;
  /** Expected `<Issuer>` of assertions. Undefined accepts any issuer whose assertion the certificate verifies. */
  idpEntityId?: string;
  /** Our entity id, which is also the audience assertions must name. Undefined means the metadata URL. */
  spEntityId?: string;
  /** Assertion consumer service URL. Undefined means `<appliance url>/api/v1/auth/saml/acs`. */
  acsUrl?: URL;
  /** Attribute that contains the user name. Undefined uses the NameID. */
  usernameAttribute?: string;
  /** Attribute that contains the user's groups. */
  groupAttribute: string;
  /** Clock difference tolerated on NotBefore and NotOnOrAfter, in seconds. */
  clockSkewSeconds: number;
}

/** Maximum SAML_CLOCK_SKEW_SECONDS, because a larger skew would keep expired assertions usable. */
const maxClockSkewSeconds = 600;

/** Error thrown at start-up for an invalid SAML_* setting. Its message names the setting and the fix. */
export class SamlSettingsError extends Error {
  constructor(setting: string, problem: string) {
    super(`Invalid ${setting}: ${problem}`);
    this.name = 'SamlSettingsError';
  }
}

/**
 * Reads the SAML_* settings. Returns undefined when none is set (SAML sign-in
 * off). Any SAML_* setting without SAML_IDP_SSO_URL is an error, not a silent no-op.
 */
export function readSamlSettings(env: NodeJS.ProcessEnv): SamlSettings | undefined {
  const setNames = Object.keys(env).filter((name) => name.startsWith('SAML_') && env[name] !== '');
  if (!setNames.length) return undefined;
  if (!env.SAML_IDP_SSO_URL)
    throw new SamlSettingsError(
      'SAML_IDP_SSO_URL',
      `it is required when ${setNames.join(', ')} is set; set it to the identity provider's single sign-on URL.`,
    );

  return {
    idpSsoUrl: httpsOrLoopbackUrl('SAML_IDP_SSO_URL', env.SAML_IDP_SSO_URL, settingError),
    idpCertificate: certificate(env.SAML_IDP_CERT_FILE),
    idpEntityId: env.SAML_IDP_ENTITY_ID || undefined,
    spEntityId: env.SAML_SP_ENTITY_ID || undefined,
    acsUrl: env.SAML_ACS_URL
      ? httpsCallbackUrl('SAML_ACS_URL', env.SAML_ACS_URL, settingError)
      : undefined,
    usernameAttribute: env.SAML_USERNAME_ATTRIBUTE || undefined,
    groupAttribute: env.SAML_GROUP_ATTRIBUTE || 'groups',
    groupRoleMap: parseGroupRoleMap('SAML_GROUP_ROLE_MAP', env.SAML_GROUP_ROLE_MAP),
    defaultRole: parseDefaultRole('SAML_DEFAULT_ROLE', env.SAML_DEFAULT_ROLE),
    clockSkewSeconds: clockSkew(env.SAML_CLOCK_SKEW_SECONDS),
  };
}

const settingError = (setting: string, problem: string) => new SamlSettingsError(setting, problem);

/** Reads and checks the PEM certificate file, so a wrong path fails at start-up, not at the first sign-in. */
function certificate(file: string | undefined): string {
  if (!file)
    throw new SamlSettingsError(
      'SAML_IDP_CERT_FILE',
      "it is required; set it to the path of the identity provider's signing certificate (PEM).",
    );

  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new SamlSettingsError(
      'SAML_IDP_CERT_FILE',
      `${JSON.stringify(file)} could not be read (${(error as NodeJS.ErrnoException).code ?? 'error'}); check the path and its permissions.`,
    );
  }
  try {
    new crypto.X509Certificate(pem);
  } catch {
    throw new SamlSettingsError(
      'SAML_IDP_CERT_FILE',
      `${JSON.stringify(file)} is not a PEM X.509 certificate; export the signing certificate from the identity provider's metadata.`,
    );
  }
  return pem;
}

function clockSkew(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 60;

  const seconds = Number(raw);
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > maxClockSkewSeconds)
    throw new SamlSettingsError(
      'SAML_CLOCK_SKEW_SECONDS',
      `${JSON.stringify(raw)} must be a whole number of seconds from 0 to ${maxClockSkewSeconds}.`,
    );
  return seconds;
}
