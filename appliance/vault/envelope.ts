import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import { HsmError } from '../../hsm/errors';
import type { KeyProvider } from '../../hsm/key-provider';
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

/** PKCS#11 mechanism that wraps data keys (RFC 3394), recorded with each wrapped key. */
export const wrapMechanism = 'CKM_AES_KEY_WRAP';

/** Data-key version given to new prompts; a key rotation would write the next one. */
const currentKeyVersion = 1;

interface DataKeyRow {
  wrapped_key: Buffer;
  master_key_uri: string;
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
  ) {
    this.cache = new DataKeyCache(cacheOptions);
  }

  createKey(promptId: string): NewPromptKey {
    const dataKey = crypto.randomBytes(dataKeyLength);
    const wrapped = this.keys.wrapDataKey(dataKey);

    return {
      sealer: new DataKeySealer(dataKey, currentKeyVersion),
      save: async (transaction) => {
        await this.database.sequelize.query(
          `INSERT INTO prompt_data_keys (prompt_id, key_version, wrapped_key, wrap_mechanism, master_key_uri, created_at)
           VALUES (:promptId, :keyVersion, :wrapped, :mechanism, :masterKeyUri, :createdAt)`,
          {
            transaction,
            replacements: {
              promptId,
              keyVersion: currentKeyVersion,
              wrapped,
              mechanism: wrapMechanism,
              masterKeyUri: this.keys.masterKeyUri,
              createdAt: new Date().toISOString(),
            },
          },
        );
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
    const cached = this.cache.get(id);
    if (cached) return new DataKeySealer(cached, keyVersion);

    const rows = await this.database.sequelize.query<DataKeyRow>(
      'SELECT wrapped_key, master_key_uri FROM prompt_data_keys WHERE prompt_id = :promptId AND key_version = :keyVersion',
      { type: QueryTypes.SELECT, transaction, replacements: { promptId, keyVersion } },
    );
    const part = `data key version ${keyVersion}`;
    if (!rows.length) throw new IntegrityError(promptId, `${part} (missing)`);

    const dataKey = this.unwrap(promptId, part, rows[0]);
    this.cache.set(id, dataKey);
    return new DataKeySealer(dataKey, keyVersion);
  }

  close(): void {
    this.cache.clear();
  }

  private unwrap(promptId: string, part: string, row: DataKeyRow): Buffer {
    try {
      return this.keys.unwrapDataKey(Buffer.from(row.wrapped_key));
    } catch (error) {
      if (!(error instanceof HsmError) || error.code !== 'hsm_unwrap_failed') throw error;

      // A key wrapped under another master key fails the same RFC 3394 check as an altered one.
      logger.error(
        {
          promptId,
          storedMasterKeyUri: row.master_key_uri,
          masterKeyUri: this.keys.masterKeyUri,
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
