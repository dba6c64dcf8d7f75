import crypto from 'node:crypto';

/** Length of the recovery key in bytes (256 bits); it is an X25519 private key. */
export const recoveryKeyLength = 32;

/** DER prefix of a PKCS#8 X25519 private key (RFC 8410); the 32 key bytes follow it. */
const pkcs8X25519Prefix = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** Escrow layout version, the first byte of every sealed key. */
const escrowFormat = 1;
const ivLength = 12;
const tagLength = 16;
const publicKeyLength = 32;
const hkdfInfo = Buffer.from('prompt-bank recovery escrow v1');
/** AAD of the escrowed database key; data keys use `prompt:<id>/data-key:<version>`. */
const databaseKeyAad = Buffer.from('appliance-database-key');

/** The recovery key, held in process memory only while a command runs. */
export class RecoveryKey {
  private constructor(
    private readonly secret: Buffer,
    private readonly privateKey: crypto.KeyObject,
  ) {}

  static generate(): RecoveryKey {
    return RecoveryKey.fromBytes(crypto.randomBytes(recoveryKeyLength));
  }

  static fromBytes(bytes: Uint8Array): RecoveryKey {
    if (bytes.length !== recoveryKeyLength) {
      throw new Error(`a recovery key is ${recoveryKeyLength} bytes, got ${bytes.length}`);
    }
    const secret = Buffer.from(bytes);
    const privateKey = crypto.createPrivateKey({
      key: Buffer.concat([pkcs8X25519Prefix, secret]),
      format: 'der',
      type: 'pkcs8',
    });
    return new RecoveryKey(secret, privateKey);
  }

  /** The key bytes, for splitting into shares; the caller must not store them. */
  bytes(): Buffer {
    return Buffer.from(this.secret);
  }

  /** SHA-256 of the key bytes, hex; stored so a rebuilt key can be checked. */
  fingerprint(): string {
    return recoveryFingerprint(this.secret);
  }

  /** Raw 32-byte X25519 public key, stored so data keys can be escrowed without the custodians. */
  publicKey(): Buffer {
    return rawPublicKey(crypto.createPublicKey(this.privateKey));
  }

  /** Opens an escrowed data key; throws when `sealed` was altered or sealed for another key or prompt. */
  openDataKey(sealed: Buffer, promptId: string, keyVersion: number): Buffer {
    return this.open(sealed, escrowAad(promptId, keyVersion), `escrow of prompt ${promptId}`);
  }

  /** Opens the escrowed SQLCipher database key of a backup; throws when `sealed` was altered. */
  openDatabaseKey(sealed: Buffer): Buffer {
    return this.open(sealed, databaseKeyAad, 'escrow of the database key');
  }

  private open(sealed: Buffer, aad: Buffer, description: string): Buffer {
    if (sealed.length < 1 + publicKeyLength + ivLength + tagLength || sealed[0] !== escrowFormat) {
      throw new Error(`${description} has an unknown layout`);
    }
    let offset = 1;
    const ephemeral = sealed.subarray(offset, (offset += publicKeyLength));
    const iv = sealed.subarray(offset, (offset += ivLength));
    const tag = sealed.subarray(offset, (offset += tagLength));
    const ciphertext = sealed.subarray(offset);

    const key = escrowKey(this.privateKey, ephemeral, ephemeral, this.publicKey());
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  }

  /** Overwrites the key bytes held by this object. */
  destroy(): void {
    this.secret.fill(0);
  }
}

export function recoveryFingerprint(keyBytes: Uint8Array): string {
  return crypto.createHash('sha256').update(keyBytes).digest('hex');
}

/**
 * Seals a data key to the recovery public key: X25519 with a fresh
 * ephemeral key, HKDF-SHA256, then AES-256-GCM with AAD = prompt id and key
 * version, so a sealed key moved to another prompt fails to open.
 * Layout: format (1) | ephemeral public key (32) | IV (12) | tag (16) | ciphertext.
 */
export function sealDataKey(
  recoveryPublicKey: Buffer,
  dataKey: Buffer,
  promptId: string,
  keyVersion: number,
): Buffer {
  return seal(recoveryPublicKey, dataKey, escrowAad(promptId, keyVersion));
}

/**
 * Seals the SQLCipher database key to the recovery public key for a backup
 * manifest, in the same layout as sealDataKey() with its own AAD, so a
 * sealed data key cannot pass for the database key.
 */
export function sealDatabaseKey(recoveryPublicKey: Buffer, databaseKey: Buffer): Buffer {
  return seal(recoveryPublicKey, databaseKey, databaseKeyAad);
}

function seal(recoveryPublicKey: Buffer, secret: Buffer, aad: Buffer): Buffer {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('x25519');
  const ephemeral = rawPublicKey(publicKey);
  const key = escrowKey(privateKey, recoveryPublicKey, ephemeral, recoveryPublicKey);

  const iv = crypto.randomBytes(ivLength);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(secret), cipher.final()]);

  return Buffer.concat([
    Buffer.from([escrowFormat]),
    ephemeral,
    iv,
    cipher.getAuthTag(),
    ciphertext,
  ]);
}

/** Derives the AES key from the X25519 secret; both public keys are bound in as salt. */
function escrowKey(
  own: crypto.KeyObject,
  peer: Buffer,
  ephemeral: Buffer,
  recipient: Buffer,
): Buffer {
  const shared = crypto.diffieHellman({ privateKey: own, publicKey: x25519PublicKey(peer) });
  const salt = Buffer.concat([ephemeral, recipient]);
  return Buffer.from(crypto.hkdfSync('sha256', shared, salt, hkdfInfo, 32));
}

function escrowAad(promptId: string, keyVersion: number): Buffer {
  return Buffer.from(`prompt:${promptId}/data-key:${keyVersion}`);
}

function rawPublicKey(key: crypto.KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.from(jwk.x as string, 'base64url');
}

function x25519PublicKey(raw: Buffer): crypto.KeyObject {
  return crypto.createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') },
    format: 'jwk',
  });
}
