import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import { HsmError } from '../../hsm/errors';
import type { KeyProvider } from '../../hsm/key-provider';
import {
  activeMasterKey,
  masterKeyRetiredProblem,
  type MasterKeyState,
} from '../keys/master-key-versions';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import { DataKeyCache, type DataKeyCacheOptions } from './data-key-cache';
import {
  dataKeyLength,
  IntegrityError,
  openField,
  sealField,
  type FieldLocation,
} from './field-cipher';

/** Seals and opens the content fields of one prompt. */
export interface PromptSealer {
  /** Version of the prompt's data key that this sealer uses; stored next to each sealed row. */
  readonly keyVersion: number;
  seal(location: FieldLocation, plaintext: string): Buffer;
  /** Throws IntegrityError when `sealed` does not authenticate at `location`. */
  open(location: FieldLocation, sealed: Buffer): string;
}

/** The data key of a new prompt, made but not yet stored. */
export interface NewPromptKey {
  sealer: PromptSealer;
  /** Stores the wrapped key in the prompt's create transaction, after the prompt row. */
  save(transaction: Transaction): Promise<void>;
}

/**
 * Protection of prompt content in the vault. The runtime always uses
 * EnvelopeEncryption; the benchmark passes a plaintext one to measure the
 * cost of encryption.
 */
export interface PromptEncryption {
  createKey(promptId: string): NewPromptKey;
  /** Throws IntegrityError when the stored key is missing or fails to unwrap. */
  sealerFor(promptId: string, keyVersion: number, transaction?: Transaction): Promise<PromptSealer>;
  close(): void;
}

/**
 * Called in a new prompt's create transaction with its plaintext data key,
 * after the wrapped key is stored; a throw rolls the creation back. The
 * runtime uses it to escrow data keys for disaster recovery.
 */
export type DataKeyCreatedHook = (
  promptId: string,
  keyVersion: number,
  dataKey: Buffer,
  transaction: Transaction,
) => Promise<void>;

/** PKCS#11 mechanism that wraps data keys (RFC 3394), recorded with each wrapped key. */
export const wrapMechanism = 'CKM_AES_KEY_WRAP';

/**
 * Data-key version given to new prompts. A master key rotation rewraps data
 * keys but keeps them, so this version does not change with it.
 */
const currentKeyVersion = 1;

interface DataKeyRow {
  wrapped_key: Buffer;
  master_key_uri: string;
  master_key_version: number;
  /** URI recorded in key_versions for master_key_version; null when key_versions has no row. */
  version_uri: string | null;
  version_state: MasterKeyState | null;
}

/**
 * Envelope encryption: each prompt has its own random AES-256 data key,
 * stored only wrapped by the HSM master key. Unwrapped keys are kept in a
 * DataKeyCache so that reads do not call the HSM each time.
 */
export class EnvelopeEncryption implements PromptEncryption {
  private readonly cache: DataKeyCache;

  constructor(
    private readonly database: Database,
    private readonly keys: KeyProvider,
    cacheOptions: DataKeyCacheOptions = {},
    private readonly onDataKeyCreated?: DataKeyCreatedHook,
  ) {
    this.cache = new DataKeyCache(cacheOptions);
  }

  createKey(promptId: string): NewPromptKey {
    const dataKey = crypto.randomBytes(dataKeyLength);

    return {
      sealer: new DataKeySealer(dataKey, currentKeyVersion),
      save: async (transaction) => {
        // The active master key version is read in the write transaction
        // that stores the wrapped key, so a rotation committed by another
        // writer cannot leave this key behind under the previous version.
        const master = await activeMasterKey(this.database, this.keys, transaction);
        const wrapped = this.keys.wrapDataKey(dataKey, master.keyUri);

        await this.database.sequelize.query(
          `INSERT INTO prompt_data_keys (prompt_id, key_version, wrapped_key, wrap_mechanism, master_key_uri,
             master_key_version, created_at)
           VALUES (:promptId, :keyVersion, :wrapped, :mechanism, :masterKeyUri, :masterKeyVersion, :createdAt)`,
          {
            transaction,
            replacements: {
              promptId,
              keyVersion: currentKeyVersion,
              wrapped,
              mechanism: wrapMechanism,
              masterKeyUri: master.keyUri,
              masterKeyVersion: master.version,
              createdAt: new Date().toISOString(),
            },
          },
        );
        await this.onDataKeyCreated?.(promptId, currentKeyVersion, dataKey, transaction);
        transaction.afterCommit(() =>
          this.cache.set(cacheId(promptId, currentKeyVersion), dataKey),
        );
      },
    };
  }

  async sealerFor(
    promptId: string,
    keyVersion: number,
    transaction?: Transaction,
  ): Promise<PromptSealer> {
    const id = cacheId(promptId, keyVersion);
    // A cached key skips the master key state check below. That is safe
    // because a rewrap keeps the data key itself, and retiring a version is
    // refused while any data key is still wrapped under it.
    const cached = this.cache.get(id);
    if (cached) return new DataKeySealer(cached, keyVersion);

    const rows = await this.database.sequelize.query<DataKeyRow>(
      `SELECT d.wrapped_key, d.master_key_uri, d.master_key_version,
         v.key_uri AS version_uri, v.state AS version_state
       FROM prompt_data_keys d LEFT JOIN key_versions v ON v.version = d.master_key_version
       WHERE d.prompt_id = :promptId AND d.key_version = :keyVersion`,
      { type: QueryTypes.SELECT, transaction, replacements: { promptId, keyVersion } },
    );
    const part = `data key version ${keyVersion}`;
    if (!rows.length) throw new IntegrityError(promptId, `${part} (missing)`);

    // Fail closed: a retired master key version, or one key_versions does
    // not record, opens nothing until a rewrap moves the data key.
    const row = rows[0];
    const recorded = row.version_uri !== null || row.master_key_version === 1;
    if (row.version_state === 'retired' || !recorded) {
      throw masterKeyRetiredProblem(promptId, row.master_key_version);
    }

    const dataKey = this.unwrap(promptId, part, row);
    this.cache.set(id, dataKey);
    return new DataKeySealer(dataKey, keyVersion);
  }

  close(): void {
    this.cache.clear();
  }

  private unwrap(promptId: string, part: string, row: DataKeyRow): Buffer {
    try {
      // The URI comes from key_versions, not from the data-key row, so an
      // edited row cannot point the unwrap at another key.
      return this.keys.unwrapDataKey(
        Buffer.from(row.wrapped_key),
        row.version_uri ?? this.keys.masterKeyUri,
      );
    } catch (error) {
      if (!(error instanceof HsmError) || error.code !== 'hsm_unwrap_failed') throw error;

      // A key wrapped under another master key fails the same RFC 3394 check as an altered one.
      logger.error(
        {
          promptId,
          storedMasterKeyUri: row.master_key_uri,
          masterKeyVersion: row.master_key_version,
          masterKeyUri: row.version_uri ?? this.keys.masterKeyUri,
          hsmCode: error.code,
        },
        'prompt data key failed to unwrap',
      );
      throw new IntegrityError(promptId, part, { cause: error });
    }
  }
}

class DataKeySealer implements PromptSealer {
  constructor(
    private readonly dataKey: Buffer,
    readonly keyVersion: number,
  ) {}

  seal(location: FieldLocation, plaintext: string): Buffer {
    return sealField(this.dataKey, location, plaintext);
  }

  open(location: FieldLocation, sealed: Buffer): string {
    return openField(this.dataKey, location, sealed);
  }
}

function cacheId(promptId: string, keyVersion: number): string {
  return `${promptId}/${keyVersion}`;
}
