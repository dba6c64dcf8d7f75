import { auditKeyLabel, masterKeyLabel } from '../../hsm/appliance-keys';
import type { KeyProvider } from '../../hsm/key-provider';
import type { TokenSetupResult } from '../../hsm/token-setup';
import { signingKeyLabel } from '../../hsm/signing-key';
import type { Database } from '../platform/database';
import { readState, writeState } from '../platform/state';
import type { TokenKeyRef } from './token-dates';

/** Class of a key in the inventory. */
export type KeyClass = 'master' | 'audit-hmac' | 'signing' | 'data-key' | 'tenant' | 'database';

/** One of the three keys that live on the token. */
export interface TokenKey extends TokenKeyRef {
  keyClass: Exclude<KeyClass, 'data-key' | 'tenant' | 'database'>;
  /** RFC 7512 PKCS#11 URI. */
  uri: string;
  algorithm: string;
}

/**
 * Source of a creation time. `token-start-date` is CKA_START_DATE, and
 * `token-setup` is the start whose ensureToken() generated the key.
 * `first-seen` is the first start that found the key already on the token,
 * `data-key-row` is created_at of the oldest row of a data-key aggregate,
 * `rotation` is the rotation that generated a master or tenant key
 * version, `project-creation` is the creation of a customer-keyed project,
 * and `key-file` is createdAt of the wrapped database key file.
 */
export type CreationSource =
  | 'token-start-date'
  | 'token-setup'
  | 'first-seen'
  | 'data-key-row'
  | 'rotation'
  | 'project-creation'
  | 'key-file';

export interface KeyCreation {
  /** ISO 8601; a date without time for `token-start-date`. */
  createdAt: string;
  source: CreationSource;
}

/** Lists the token keys of the open key provider. */
export function tokenKeys(keys: KeyProvider): TokenKey[] {
  return [
    {
      keyClass: 'master',
      label: masterKeyLabel,
      objectClass: 'secret-key',
      uri: keys.masterKeyUri,
      algorithm: 'AES-256 (CKM_AES_KEY_WRAP)',
    },
    {
      keyClass: 'audit-hmac',
      label: auditKeyLabel,
      objectClass: 'secret-key',
      uri: keys.auditKeyUri,
      algorithm: 'HMAC-SHA256 (generic secret, 256 bits)',
    },
    {
      keyClass: 'signing',
      label: signingKeyLabel,
      objectClass: 'private-key',
      uri: keys.signingKeyUri,
      algorithm: 'ECDSA P-256',
    },
  ];
}

function stateKey(uri: string): string {
  return `keys.created:${uri}`;
}

/**
 * Stores when each token key was created, once per key: the token's
 * CKA_START_DATE when set, else now when this start's ensureToken() generated
 * the key, else now as the first time this appliance saw it. A stored
 * record is kept unless ensureToken() generated the key again.
 */
export async function recordKeyCreation(
  database: Database,
  keys: TokenKey[],
  token: Pick<TokenSetupResult, 'createdKeys'>,
  startDates: Map<string, string>,
  now: Date = new Date(),
): Promise<void> {
  await database.write(async (transaction) => {
    for (const key of keys) {
      const startDate = startDates.get(key.label);
      const generated = token.createdKeys.includes(key.label);
      const stored = await readState(database, stateKey(key.uri), transaction);
      if (stored && !generated && !startDate) continue;

      const creation: KeyCreation = startDate
        ? { createdAt: startDate, source: 'token-start-date' }
        : { createdAt: now.toISOString(), source: generated ? 'token-setup' : 'first-seen' };
      await writeState(database, stateKey(key.uri), JSON.stringify(creation), transaction);
    }
  });
}

/** Reads the stored creation record of a token key, or undefined when none exists. */
export async function readKeyCreation(
  database: Database,
  uri: string,
): Promise<KeyCreation | undefined> {
  const value = await readState(database, stateKey(uri));
  return value ? (JSON.parse(value) as KeyCreation) : undefined;
}
