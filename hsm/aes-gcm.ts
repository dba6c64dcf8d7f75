import {
  AesGcm240Params,
  KeyType,
  MechanismEnum,
  ObjectClass,
  type SecretKey,
  type Session,
} from 'graphene-pk11';

import { HsmError, ckrName, toHsmError } from './errors';
import { clearOpenSslErrorQueue } from './openssl-error-queue';

/** Length of the GCM authentication tag in bytes; PKCS#11 appends it to the ciphertext. */
export const gcmTagLength = 16;

/** Length of the GCM IV in bytes (NIST SP 800-38D recommends 96 bits). */
export const gcmIvLength = 12;

/** Inputs of one CKM_AES_GCM operation besides the data. */
export interface GcmInput {
  key: SecretKey;
  iv: Buffer;
  aad?: Buffer;
}

/** Generates an AES-256 session key for CKM_AES_GCM; it disappears when the session closes. */
export function generateGcmKey(session: Session): SecretKey {
  try {
    return session
      .generateKey(MechanismEnum.AES_KEY_GEN, {
        class: ObjectClass.SECRET_KEY,
        keyType: KeyType.AES,
        valueLen: 32,
        token: false,
        encrypt: true,
        decrypt: true,
      })
      .toType<SecretKey>();
  } catch (error) {
    throw toHsmError(error, 'Generating an AES-256 session key (C_GenerateKey)');
  }
}

/**
 * Encrypts `plaintext` with CKM_AES_GCM inside the token and returns the
 * ciphertext with the 16-byte tag appended, as PKCS#11 produces it.
 */
export function gcmEncrypt(session: Session, input: GcmInput, plaintext: Buffer): Buffer {
  checkIv(input.iv);
  try {
    const cipher = session.createCipher(gcmMechanism(input), input.key);
    return cipher.once(plaintext, Buffer.alloc(plaintext.length + gcmTagLength));
  } catch (error) {
    throw toHsmError(error, 'Encrypting with CKM_AES_GCM (C_Encrypt)');
  }
}

/**
 * Decrypts the output of gcmEncrypt() inside the token. A tag that does not
 * match throws hsm_decrypt_failed: SoftHSM 2.6.1 reports it as
 * CKR_GENERAL_ERROR, not CKR_ENCRYPTED_DATA_INVALID, so both are read as
 * altered input while the session still answers.
 */
export function gcmDecrypt(session: Session, input: GcmInput, sealed: Buffer): Buffer {
  checkIv(input.iv);
  if (sealed.length < gcmTagLength) {
    throw new HsmError(
      'hsm_invalid_input',
      `Decrypting with CKM_AES_GCM failed: expected at least the ${gcmTagLength}-byte tag, got ${sealed.length} bytes.`,
    );
  }

  try {
    const decipher = session.createDecipher(gcmMechanism(input), input.key);
    return decipher.once(sealed, Buffer.alloc(sealed.length));
  } catch (error) {
    clearOpenSslErrorQueue();
    const ckr = ckrName(error);
    if (
      (ckr === 'CKR_GENERAL_ERROR' || ckr === 'CKR_ENCRYPTED_DATA_INVALID') &&
      sessionResponds(session)
    ) {
      throw new HsmError(
        'hsm_decrypt_failed',
        `Decrypting with CKM_AES_GCM failed with ${ckr}: the authentication tag does not match, so the ciphertext, IV or additional data was altered, or another key sealed it. Nothing was returned; restore the stored value from a backup.`,
        { ckr, cause: error },
      );
    }
    throw toHsmError(error, 'Decrypting with CKM_AES_GCM (C_Decrypt)');
  }
}

function gcmMechanism(input: GcmInput) {
  return {
    name: 'AES_GCM',
    params: new AesGcm240Params(input.iv, input.aad ?? Buffer.alloc(0), gcmTagLength * 8),
  };
}

function checkIv(iv: Buffer): void {
  if (!Buffer.isBuffer(iv) || iv.length !== gcmIvLength) {
    throw new HsmError(
      'hsm_invalid_input',
      `CKM_AES_GCM needs a ${gcmIvLength}-byte IV, got ${Buffer.isBuffer(iv) ? `${iv.length} bytes` : typeof iv}.`,
    );
  }
}

/**
 * Returns whether C_GetSessionInfo still succeeds on the session, which tells a
 * tag mismatch apart from a device fault that also gives CKR_GENERAL_ERROR.
 */
function sessionResponds(session: Session): boolean {
  try {
    session.lib.C_GetSessionInfo(session.handle);
    return true;
  } catch {
    return false;
  }
}
