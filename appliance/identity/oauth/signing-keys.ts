import crypto from 'node:crypto';

import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyProvider } from '../../../hsm/key-provider';
import { ProblemError, problems } from '../../http/problem';
import { activeMasterKey, type MasterKeyState } from '../../keys/master-key-versions';
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

/** A signing key row with the key_versions entry of its master key URI; both null when none records it. */
interface SigningKeyVersionRow extends SigningKeyRow {
  version: number | null;
  version_state: MasterKeyState | null;
}

/** Selects the newest signing key with the state of the master key version that wraps its data key. */
const newestRowQuery = `SELECT s.kid, s.public_jwk, s.sealed_private_key, s.wrapped_data_key, s.master_key_uri,
    v.version, v.state AS version_state
  FROM oauth_signing_keys s LEFT JOIN key_versions v ON v.key_uri = s.master_key_uri
  ORDER BY s.created_at DESC, s.rowid DESC LIMIT 1`;

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
 * the public key, which is stored in clear and cached. A master key
 * rotation rewraps the data key (appliance/keys/master-wrapped-keys.ts), and
 * a data key under a retired master key version signs nothing.
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

    // Fail closed like the vault: a retired master key version unwraps nothing
    // until a rewrap moves the key, and an unrecorded master key unwraps nothing.
    if (
      row.version_state === 'retired' ||
      (row.version === null && row.master_key_uri !== keys.masterKeyUri)
    ) {
      throw signingKeyRetiredProblem(row.kid, row.version);
    }
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

  private async newestRow(transaction?: Transaction): Promise<SigningKeyVersionRow | undefined> {
    const [row] = await this.database.sequelize.query<SigningKeyVersionRow>(newestRowQuery, {
      type: QueryTypes.SELECT,
      transaction,
    });
    return row;
  }

  /**
   * Generates and stores the key pair, with its data key wrapped under the
   * active master key version read in the write transaction. A concurrent
   * first request that won the write queue keeps its key.
   */
  private async generate(keys: KeyProvider): Promise<SigningKeyVersionRow> {
    const pair = crypto.generateKeyPairSync('ed25519');
    const publicJwk = await exportJWK(pair.publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const jwk: JWK = { ...publicJwk, kid, alg: accessTokenAlgorithm, use: 'sig' };

    const dataKey = crypto.randomBytes(32);
    let sealed: Buffer;
    try {
      sealed = seal(dataKey, pair.privateKey.export({ format: 'der', type: 'pkcs8' }), kid);
      const stored = await this.database.write(async (transaction) => {
        const existing = await this.newestRow(transaction);
        if (existing) return existing;

        const master = await activeMasterKey(this.database, keys, transaction);
        const row: SigningKeyVersionRow = {
          kid,
          public_jwk: JSON.stringify(jwk),
          sealed_private_key: sealed,
          wrapped_data_key: keys.wrapDataKey(dataKey, master.keyUri),
          master_key_uri: master.keyUri,
          version: master.version,
          version_state: 'active',
        };
        await this.database.sequelize.query(
          `INSERT INTO oauth_signing_keys (kid, public_jwk, sealed_private_key, wrapped_data_key, master_key_uri, created_at)
           VALUES (:kid, :public_jwk, :sealed_private_key, :wrapped_data_key, :master_key_uri, :now)`,
          {
            transaction,
            replacements: {
              kid: row.kid,
              public_jwk: row.public_jwk,
              sealed_private_key: row.sealed_private_key,
              wrapped_data_key: row.wrapped_data_key,
              master_key_uri: row.master_key_uri,
              now: new Date().toISOString(),
            },
          },
        );
        return row;
      });
      if (stored.kid === kid) logger.info({ kid }, 'access token signing key generated');
      return stored;
    } finally {
      dataKey.fill(0);
    }
  }
}

/** Builds the 409 problem for a signing key whose data key sits under a retired or unrecorded master key version. */
function signingKeyRetiredProblem(kid: string, version: number | null): ProblemError {
  const detail =
    version === null
      ? `The data key of the OAuth signing key ${kid} is wrapped under a master key that key_versions does not record, so no access token can be signed. Run \`appliancectl keys rewrap\`, which deletes that key, and the next token request generates a new key pair.`
      : `The data key of the OAuth signing key ${kid} is wrapped under master key version ${version}, which is retired, so no access token can be signed. Rewrap it under the active version with \`appliancectl keys rewrap\` and retry.`;
  return new ProblemError(409, 'master_key_retired', 'Master key version retired', detail);
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
