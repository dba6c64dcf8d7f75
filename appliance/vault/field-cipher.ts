import crypto from 'node:crypto';

/** Prompt fields that carry content and are stored sealed. */
export type SealedField = 'title' | 'description' | 'tags' | 'body' | 'note';

/**
 * Where a sealed value belongs. `version` is the version number for the
 * fields of a version (body, note) and 0 for the fields of the prompt record
 * (title, description, tags).
 */
export interface FieldLocation {
  promptId: string;
  version: number;
  field: SealedField;
}

/** A sealed value that fails authentication: altered, moved to another row or field, or sealed under another key. */
export class IntegrityError extends Error {
  override readonly name = 'IntegrityError';

  constructor(
    readonly promptId: string,
    /** The part that failed, such as `title of version 0` or `data key version 1`; never content. */
    readonly part: string,
    options?: { cause?: unknown },
  ) {
    super(`The stored ${part} of prompt ${promptId} failed its integrity check.`, options);
  }
}

/** Length of an AES-256 key in bytes. */
export const dataKeyLength = 32;

/** First byte of every sealed value; a new layout gets a new number. */
const layoutVersion = 1;
const nonceLength = 12;
const tagLength = 16;
const headerLength = 1 + nonceLength;

/**
 * Builds the additional authenticated data of a field. The parts are joined
 * with NUL, which none of them can contain (a UUID, an integer, a field name).
 */
export function associatedData(location: FieldLocation): Buffer {
  return Buffer.from(
    [
      'prompt-bank-vault',
      String(layoutVersion),
      location.promptId,
      String(location.version),
      location.field,
    ].join('\0'),
    'utf8',
  );
}

/**
 * Encrypts `plaintext` with AES-256-GCM under `key`, a fresh random 12-byte
 * nonce and the AAD of `location`. Layout: layout version (1 byte), nonce
 * (12 bytes), ciphertext, tag (16 bytes).
 */
export function sealField(key: Buffer, location: FieldLocation, plaintext: string): Buffer {
  assertKey(key);
  const nonce = crypto.randomBytes(nonceLength);

  const cipher = crypto.createCipheriv('aes-256-gcm', key, nonce, { authTagLength: tagLength });
  cipher.setAAD(associatedData(location));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);

  return Buffer.concat([Buffer.from([layoutVersion]), nonce, ciphertext, cipher.getAuthTag()]);
}

/** Decrypts a value made by sealField; throws IntegrityError when it does not authenticate at `location`. */
export function openField(key: Buffer, location: FieldLocation, sealed: Buffer): string {
  assertKey(key);
  const part = `${location.field} of version ${location.version}`;

  if (
    !Buffer.isBuffer(sealed) ||
    sealed.length < headerLength + tagLength ||
    sealed[0] !== layoutVersion
  ) {
    throw new IntegrityError(location.promptId, part);
  }

  const nonce = sealed.subarray(1, headerLength);
  const ciphertext = sealed.subarray(headerLength, sealed.length - tagLength);
  const tag = sealed.subarray(sealed.length - tagLength);

  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, nonce, {
      authTagLength: tagLength,
    });
    decipher.setAAD(associatedData(location));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
  } catch (error) {
    throw new IntegrityError(location.promptId, part, { cause: error });
  }
}

function assertKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== dataKeyLength) {
    throw new TypeError(`A prompt data key must be ${dataKeyLength} bytes for AES-256.`);
  }
}
