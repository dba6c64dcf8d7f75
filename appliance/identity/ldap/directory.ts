import { Client, InvalidCredentialsError, SizeLimitExceededError, type Entry } from 'ldapts';

import { ProblemError } from '../../http/problem';
import { logger } from '../../platform/logger';
import { bindDnFor, firstRdnValue, groupFilterFor, userFilterFor } from './queries';
import type { LdapSettings } from './settings';

/** A directory user whose password the server accepted. */
export interface DirectoryUser {
  dn: string;
  /** Stable id of the entry: its entryUUID, else its DN in lower case. */
  subject: string;
  /** Each group's DN and the value of its first RDN (usually its cn), so the role map may name either. */
  groups: string[];
}

/** The directory server could not be reached or failed; the sign-in is rejected and not counted as a wrong password. */
export class LdapUnavailableError extends ProblemError {
  constructor() {
    super(
      503,
      'ldap_unavailable',
      'Directory unavailable',
      'The LDAP server did not answer or failed, so the sign-in was refused; try again, and if it persists ask an admin to check LDAP_URL and the server.',
    );
  }
}

/** Checks passwords and reads group membership at the configured LDAP or Active Directory server. */
export class LdapDirectory {
  constructor(private readonly settings: LdapSettings) {}

  /**
   * Binds as the user and reads their groups. Returns undefined for an unknown
   * user, a wrong password or a name that matches several entries. Any other
   * failure of the server or the network throws LdapUnavailableError.
   */
  async authenticate(username: string, password: string): Promise<DirectoryUser | undefined> {
    const client = new Client({
      url: this.settings.url.href,
      timeout: this.settings.timeoutMs,
      connectTimeout: this.settings.timeoutMs,
    });
    try {
      const dn = await this.findUserDn(client, username);
      if (!dn) return undefined;

      try {
        await client.bind(dn, password);
      } catch (error) {
        if (error instanceof InvalidCredentialsError) return undefined;
        throw error;
      }

      // The service account reads entries and groups, so users need no read rights of their own.
      const service = this.settings.serviceAccount;
      if (service) await client.bind(service.dn, service.password);
      const entry = await this.readEntry(client, dn);
      return { dn, subject: subjectOf(entry), groups: await this.groupsOf(client, entry) };
    } catch (error) {
      logger.error(
        { err: error, ldapServer: this.settings.url.host },
        'LDAP sign-in failed at the directory server',
      );
      throw new LdapUnavailableError();
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  /** Direct bind builds the DN from the template; search-then-bind looks the user up as the service account. */
  private async findUserDn(client: Client, username: string): Promise<string | undefined> {
    if (!this.settings.serviceAccount)
      return bindDnFor(this.settings.bindDnTemplate ?? '', username);

    const service = this.settings.serviceAccount;
    await client.bind(service.dn, service.password);
    try {
      const { searchEntries } = await client.search(this.settings.baseDn, {
        scope: 'sub',
        filter: userFilterFor(this.settings.userFilter, username),
        attributes: ['1.1'],
        sizeLimit: 2,
      });
      if (searchEntries.length === 1) return searchEntries[0].dn;
      if (searchEntries.length > 1)
        logger.warn({ count: searchEntries.length }, 'LDAP user filter matched several entries');
      return undefined;
    } catch (error) {
      if (!(error instanceof SizeLimitExceededError)) throw error;
      logger.warn('LDAP user filter matched several entries; the sign-in was rejected');
      return undefined;
    }
  }

  private async readEntry(client: Client, dn: string): Promise<Entry> {
    const attributes = [
      'entryUUID',
      ...(this.settings.groupAttribute ? [this.settings.groupAttribute] : []),
    ];
    const { searchEntries } = await client.search(dn, {
      scope: 'base',
      filter: '(objectClass=*)',
      attributes,
    });
    if (!searchEntries.length) throw new Error(`the entry ${dn} could not be read after its bind`);
    return searchEntries[0];
  }

  private async groupsOf(client: Client, entry: Entry): Promise<string[]> {
    let groupDns: string[];
    if (this.settings.groupAttribute) {
      // NOTE: the tests run slapd without the memberOf overlay, so this branch
      // (Active Directory's memberOf) is not exercised against a server here.
      groupDns = stringValues(entry[this.settings.groupAttribute]);
    } else {
      const { searchEntries } = await client.search(this.settings.groupBaseDn, {
        scope: 'sub',
        filter: groupFilterFor(this.settings.groupFilter, entry.dn),
        attributes: ['1.1'],
      });
      groupDns = searchEntries.map((group) => group.dn);
    }

    return [...new Set(groupDns.flatMap((dn) => [dn, firstRdnValue(dn) ?? dn]))];
  }
}

/**
 * Returns the entry's link key. NOTE: Active Directory has no entryUUID (its
 * objectGUID is binary), so there the DN is used, and moving or renaming the
 * user unlinks the account (the next sign-in then gets 409).
 */
function subjectOf(entry: Entry): string {
  const [uuid] = stringValues(entry.entryUUID);
  return uuid ?? entry.dn.toLowerCase();
}

function stringValues(value: Entry[string] | undefined): string[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((item) => (Buffer.isBuffer(item) ? item.toString('utf8') : String(item)));
}
