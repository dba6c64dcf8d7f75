import fs from 'node:fs';

import { parseDefaultRole, parseGroupRoleMap, type GroupRoleMapping } from '../oidc/role-mapping';
import { loopbackHosts } from '../setting-urls';

/** LDAP / Active Directory sign-in settings, read from the LDAP_* environment variables. */
export interface LdapSettings extends GroupRoleMapping {
  /** `ldap://host:port` or `ldaps://host:port`; plain ldap only on a loopback address. */
  url: URL;
  /** Direct bind: a DN with `{username}`, such as `uid={username},ou=people,dc=example,dc=org`. */
  bindDnTemplate?: string;
  /** Search-then-bind: the service account that looks users up, with its password from a 0600 file. */
  serviceAccount?: { dn: string; password: string };
  baseDn: string;
  /** Filter that finds the user, with `{username}` for the escaped sign-in name. */
  userFilter: string;
  /** Base DN of the group search; defaults to `baseDn`. */
  groupBaseDn: string;
  /** Filter that finds the user's groups, with `{dn}` for the escaped user DN; unused when `groupAttribute` is set. */
  groupFilter: string;
  /** Attribute of the user entry that lists group DNs (Active Directory's `memberOf`); undefined means search groups. */
  groupAttribute?: string;
  /** Network and operation timeout, in milliseconds. */
  timeoutMs: number;
}

/** Thrown at start-up for a bad LDAP_* setting; the message names the setting and the fix. */
export class LdapSettingsError extends Error {
  constructor(setting: string, problem: string) {
    super(`Invalid ${setting}: ${problem}`);
    this.name = 'LdapSettingsError';
  }
}

/**
 * Reads the LDAP_* settings. Returns undefined when none is set (LDAP sign-in
 * off); any LDAP_* setting without LDAP_URL is an error, not a silent no-op.
 */
export function readLdapSettings(env: NodeJS.ProcessEnv): LdapSettings | undefined {
  const given = Object.keys(env).filter((name) => name.startsWith('LDAP_') && env[name] !== '');
  if (!given.length) return undefined;
  if (!env.LDAP_URL)
    throw new LdapSettingsError(
      'LDAP_URL',
      `it is required when ${given.join(', ')} is set; set it to ldaps://host:port.`,
    );

  const baseDn = env.LDAP_BASE_DN;
  if (!baseDn) throw new LdapSettingsError('LDAP_BASE_DN', 'it is required when LDAP_URL is set.');

  const bindDnTemplate = env.LDAP_BIND_DN_TEMPLATE || undefined;
  const serviceAccount = readServiceAccount(env);
  if (!bindDnTemplate && !serviceAccount)
    throw new LdapSettingsError(
      'LDAP_BIND_DN_TEMPLATE',
      'set it (direct bind) or set LDAP_BIND_DN and LDAP_BIND_PASSWORD_FILE (search, then bind).',
    );
  if (bindDnTemplate && !bindDnTemplate.includes('{username}'))
    throw new LdapSettingsError('LDAP_BIND_DN_TEMPLATE', 'it must contain {username}.');

  const userFilter = env.LDAP_USER_FILTER || '(&(objectClass=inetOrgPerson)(uid={username}))';
  if (!userFilter.includes('{username}'))
    throw new LdapSettingsError('LDAP_USER_FILTER', 'it must contain {username}.');
  const groupFilter = env.LDAP_GROUP_FILTER || '(&(objectClass=groupOfNames)(member={dn}))';
  if (!groupFilter.includes('{dn}'))
    throw new LdapSettingsError('LDAP_GROUP_FILTER', 'it must contain {dn}.');

  return {
    url: ldapUrl(env.LDAP_URL),
    bindDnTemplate,
    serviceAccount,
    baseDn,
    userFilter,
    groupBaseDn: env.LDAP_GROUP_BASE_DN || baseDn,
    groupFilter,
    groupAttribute: env.LDAP_GROUP_ATTRIBUTE || undefined,
    groupRoleMap: parseGroupRoleMap('LDAP_GROUP_ROLE_MAP', env.LDAP_GROUP_ROLE_MAP),
    defaultRole: parseDefaultRole('LDAP_DEFAULT_ROLE', env.LDAP_DEFAULT_ROLE),
    timeoutMs: timeout(env.LDAP_TIMEOUT_MS),
  };
}

/** Plain ldap:// sends passwords in clear text, so it is accepted only on a loopback address. */
function ldapUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new LdapSettingsError('LDAP_URL', `${JSON.stringify(raw)} is not an absolute URL.`);
  }
  if (url.protocol === 'ldaps:') return url;
  if (url.protocol === 'ldap:' && loopbackHosts.has(url.hostname)) return url;
  throw new LdapSettingsError(
    'LDAP_URL',
    `${JSON.stringify(raw)} must use ldaps:// (ldap:// only on 127.0.0.1, [::1] or localhost).`,
  );
}

function readServiceAccount(env: NodeJS.ProcessEnv): LdapSettings['serviceAccount'] {
  const dn = env.LDAP_BIND_DN;
  const file = env.LDAP_BIND_PASSWORD_FILE;
  if (!dn && !file) return undefined;
  if (!dn || !file)
    throw new LdapSettingsError(
      dn ? 'LDAP_BIND_PASSWORD_FILE' : 'LDAP_BIND_DN',
      'LDAP_BIND_DN and LDAP_BIND_PASSWORD_FILE are set together; set both or neither.',
    );

  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new LdapSettingsError('LDAP_BIND_PASSWORD_FILE', `${file} cannot be read.`);
  }
  if ((stat.mode & 0o077) !== 0)
    throw new LdapSettingsError(
      'LDAP_BIND_PASSWORD_FILE',
      `${file} is readable by group or others; run chmod 600 on it.`,
    );

  const password = fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  if (!password) throw new LdapSettingsError('LDAP_BIND_PASSWORD_FILE', `${file} is empty.`);
  return { dn, password };
}

function timeout(raw: string | undefined): number {
  if (!raw) return 5000;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0 || value > 60_000)
    throw new LdapSettingsError(
      'LDAP_TIMEOUT_MS',
      `${JSON.stringify(raw)} must be a whole number of milliseconds from 1 to 60000.`,
    );
  return value;
}
