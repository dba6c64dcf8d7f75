import crypto from 'node:crypto';

import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import { QueryTypes } from 'sequelize';

import type { KeyProvider } from '../../../hsm/key-provider';
import { problems } from '../../http/problem';
import type { Database } from '../../platform/database';
import { logger } from '../../platform/logger';

/** JWS algorithm of every access token: Ed25519 signatures (RFC 8037). */
export const accessTokenAlgorithm = 'EdDSA';

/** Length of the AES-GCM IV in bytes. */
const ivLength = 12;

/** Length of the AES-GCM tag in bytes. */
const tagLength = 16;

interface SigningKeyRow {
  kid: string;
  public_jwk: string;
  sealed_private_key: Buffer;
  wrapped_data_key: Buffer;
  master_key_uri: string;
}

/** The private key of one signing operation, with the `kid` that names its public half. */
export interface SigningKey {
  kid: string;
  privateKey: crypto.KeyObject;
}

/**
 * The Ed25519 key pair that signs access tokens. It is generated at the first
 * token request and stored encrypted: the PKCS#8 private key is sealed with
 * AES-256-GCM under a random data key, and that data key is wrapped by the
 * HSM master key. Every signature unwraps the data key in the HSM again, so
 * no token is issued while the HSM is unavailable. Verification needs only
 * the public key, which is stored in clear and cached.
 *
 * NOTE: master key rotation (appliance/keys) does not rewrap this data key,
 * so it stays under the master key version recorded in its row.
 */
export class AccessTokenSigningKeys {
  private publicKeys = new Map<string, crypto.KeyObject>();

  constructor(
    private readonly database: Database,
    private readonly keys: KeyProvider | undefined,
  ) {}

  /** Unwraps the current private key, generating the key pair first if there is none. */
  async current(): Promise<SigningKey> {
    const keys = this.requireKeys();
    const row = (await this.newestRow()) ?? (await this.generate(keys));

    const dataKey = keys.unwrapDataKey(row.wrapped_data_key, row.master_key_uri);
    try {
      const pkcs8 = open(dataKey, row.sealed_private_key, row.kid);
      return {
        kid: row.kid,
        privateKey: crypto.createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
      };
    } finally {
      dataKey.fill(0);
    }
  }

  /** Returns the public key named `kid`, or undefined when no stored key has that id. */
  async publicKey(kid: string): Promise<crypto.KeyObject | undefined> {
    const cached = this.publicKeys.get(kid);
    if (cached) return cached;

    const [row] = await this.database.sequelize.query<{ public_jwk: string }>(
      'SELECT public_jwk FROM oauth_signing_keys WHERE kid = :kid',
      { type: QueryTypes.SELECT, replacements: { kid } },
    );
    if (!row) return undefined;

    const key = crypto.createPublicKey({
      key: JSON.parse(row.public_jwk) as crypto.JsonWebKey,
      format: 'jwk',
    });
    this.publicKeys.set(kid, key);
    return key;
  }

  /** Builds the JSON Web Key Set (RFC 7517) of every stored public key; empty before the first token. */
  async jwks(): Promise<{ keys: JWK[] }> {
    const rows = await this.database.sequelize.query<{ public_jwk: string }>(
      'SELECT public_jwk FROM oauth_signing_keys ORDER BY created_at DESC',
      { type: QueryTypes.SELECT },
    );
    return { keys: rows.map((row) => JSON.parse(row.public_jwk) as JWK) };
  }

  private requireKeys(): KeyProvider {
    if (!this.keys)
      throw problems.hsmUnavailable(
        'Access tokens are signed with a key that the HSM protects, and no HSM is configured.',
      );
    return this.keys;
  }

  private async newestRow(): Promise<SigningKeyRow | undefined> {
    const [row] = await this.database.sequelize.query<SigningKeyRow>(
      'SELECT * FROM oauth_signing_keys ORDER BY created_at DESC, rowid DESC LIMIT 1',
      { type: QueryTypes.SELECT },
    );
    return row;
  }

  /** Generates and stores the key pair; a concurrent first request that won the write queue keeps its key. */
  private async generate(keys: KeyProvider): Promise<SigningKeyRow> {
    const pair = crypto.generateKeyPairSync('ed25519');
    const publicJwk = await exportJWK(pair.publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const jwk: JWK = { ...publicJwk, kid, alg: accessTokenAlgorithm, use: 'sig' };

    const dataKey = crypto.randomBytes(32);
    let row: SigningKeyRow;
    try {
      row = {
        kid,
        public_jwk: JSON.stringify(jwk),
        sealed_private_key: seal(
          dataKey,
          pair.privateKey.export({ format: 'der', type: 'pkcs8' }),
          kid,
        ),
        wrapped_data_key: keys.wrapDataKey(dataKey, keys.masterKeyUri),
        master_key_uri: keys.masterKeyUri,
      };
    } finally {
      dataKey.fill(0);
    }

    const stored = await this.database.write(async (transaction) => {
      const [existing] = await this.database.sequelize.query<SigningKeyRow>(
        'SELECT * FROM oauth_signing_keys ORDER BY created_at DESC, rowid DESC LIMIT 1',
        { type: QueryTypes.SELECT, transaction },
      );
      if (existing) return existing;

      await this.database.sequelize.query(
        `INSERT INTO oauth_signing_keys (kid, public_jwk, sealed_private_key, wrapped_data_key, master_key_uri, created_at)
         VALUES (:kid, :public_jwk, :sealed_private_key, :wrapped_data_key, :master_key_uri, :now)`,
        { transaction, replacements: { ...row, now: new Date().toISOString() } },
      );
      return row;
    });
    if (stored.kid === kid) logger.info({ kid }, 'access token signing key generated');
    return stored;
  }
}

/** Encrypts with AES-256-GCM; the output is IV, ciphertext and tag, and `kid` is bound as associated data. */
function seal(dataKey: Buffer, plaintext: Buffer, kid: string): Buffer {
  const iv = crypto.randomBytes(ivLength);
  const cipher = crypto.createCipheriv('aes-256-gcm', dataKey, iv, { authTagLength: tagLength });
  cipher.setAAD(Buffer.from(kid));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, ciphertext, cipher.getAuthTag()]);
}

/** Decrypts the output of seal(); an altered row fails the GCM tag check and throws. */
function open(dataKey: Buffer, sealed: Buffer, kid: string): Buffer {
  const iv = sealed.subarray(0, ivLength);
  const tag = sealed.subarray(sealed.length - tagLength);
  const decipher = crypto.createDecipheriv('aes-256-gcm', dataKey, iv, {
    authTagLength: tagLength,
  });
  decipher.setAAD(Buffer.from(kid));
  decipher.setAuthTag(tag);
  return Buffer.concat([
    decipher.update(sealed.subarray(ivLength, sealed.length - tagLength)),
    decipher.final(),
  ]);
}
