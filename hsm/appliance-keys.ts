import crypto from 'node:crypto';

import {
  KeyGenMechanism,
  KeyType,
  ObjectClass,
  SecretKey,
  registerAttribute,
  type ITemplate,
  type Session,
  type SessionObject,
} from 'graphene-pk11';
import pkcs11 from 'pkcs11js';

import { HsmError, toHsmError } from './errors';

// graphene-pk11 2.3.6 has no name for CKA_COPYABLE (PKCS#11 2.40), so the
// templates below could not set it without this.
registerAttribute('copyable', pkcs11.CKA_COPYABLE, 'boolean');

/** CKA_LABEL of the AES-256 key that wraps data keys. */
export const masterKeyLabel = 'vault-master';

/** CKA_LABEL of the generic-secret key behind the audit HMAC. */
export const auditKeyLabel = 'audit-hmac';

/** Length in bytes of both keys: AES-256, and an HMAC-SHA256 key of the hash's output length. */
const keyLength = 32;

/**
 * Attributes of the master key. It may only wrap and unwrap, its value
 * never leaves the token (sensitive, not extractable), and its attributes
 * cannot be changed or copied.
 */
export function masterKeyTemplate(id: Buffer, label = masterKeyLabel): ITemplate {
  return {
    class: ObjectClass.SECRET_KEY,
    keyType: KeyType.AES,
    valueLen: keyLength,
    label,
    id,
    token: true,
    private: true,
    sensitive: true,
    extractable: false,
    wrap: true,
    unwrap: true,
    encrypt: false,
    decrypt: false,
    sign: false,
    verify: false,
    derive: false,
    modifiable: false,
    copyable: false,
  };
}

/** Attributes of the audit key: HMAC sign and verify only, and its value never leaves the token. */
function auditKeyTemplate(id: Buffer): ITemplate {
  return {
    class: ObjectClass.SECRET_KEY,
    keyType: KeyType.GENERIC_SECRET,
    valueLen: keyLength,
    label: auditKeyLabel,
    id,
    token: true,
    private: true,
    sensitive: true,
    extractable: false,
    sign: true,
    verify: true,
    encrypt: false,
    decrypt: false,
    wrap: false,
    unwrap: false,
    derive: false,
    modifiable: false,
    copyable: false,
  };
}

/**
 * Returns the only object of `objectClass` labelled `label`, or null. Throws
 * hsm_key_invalid when the label is not unique, because the appliance could
 * not tell which key protects its data. Each call scans every object on the
 * token, so callers look keys up once and keep the handle.
 */
export function findKeyObject(
  session: Session,
  objectClass: ObjectClass,
  label: string,
): SessionObject | null {
  let found;
  try {
    found = session.find({ class: objectClass, label });
  } catch (error) {
    throw toHsmError(error, `Searching the token for the key "${label}"`, 'hsm_unavailable');
  }

  if (found.length > 1) {
    throw new HsmError(
      'hsm_key_invalid',
      `${found.length} objects of class ${ObjectClass[objectClass]} on the token are labelled "${label}". Delete or relabel all but one.`,
    );
  }
  return found.length === 1 ? found.items(0) : null;
}

/** Returns the secret key labelled `label`, or null; see findKeyObject(). */
export function findSecretKey(session: Session, label: string): SecretKey | null {
  return findKeyObject(session, ObjectClass.SECRET_KEY, label)?.toType<SecretKey>() ?? null;
}

/** Generates the master key on the token with a random 16-byte CKA_ID. */
export function generateMasterKey(session: Session): SecretKey {
  try {
    return session.generateKey(KeyGenMechanism.AES, masterKeyTemplate(crypto.randomBytes(16)));
  } catch (error) {
    throw toHsmError(error, `Generating the master key "${masterKeyLabel}"`);
  }
}

/**
 * CKA_LABEL of master key version `version`. Version 1 is the key that token
 * set-up generated; a rotation adds one object per later version.
 */
export function masterKeyVersionLabel(version: number): string {
  return version === 1 ? masterKeyLabel : `${masterKeyLabel}-v${version}`;
}

/**
 * Generates master key version `version` (2 or later) on the token with the
 * same attributes as version 1 and a random 16-byte CKA_ID. The CKA_ID
 * distinguishes objects of the same label made by appliances that share one token.
 */
export function generateMasterKeyVersion(
  session: Session,
  version: number,
): { key: SecretKey; label: string; id: Buffer } {
  if (!Number.isInteger(version) || version < 2) {
    throw new HsmError(
      'hsm_invalid_input',
      `Generating a master key version failed: expected a whole number of at least 2, got ${version}.`,
    );
  }

  const label = masterKeyVersionLabel(version);
  const id = crypto.randomBytes(16);
  try {
    const key = session.generateKey(KeyGenMechanism.AES, masterKeyTemplate(id, label));
    return { key, label, id };
  } catch (error) {
    throw toHsmError(error, `Generating the master key version "${label}"`);
  }
}

/**
 * Finds the master key labelled `label` with CKA_ID `id` and checks its
 * attributes; throws hsm_key_missing or hsm_key_invalid.
 */
export function requireMasterKeyVersion(
  session: Session,
  tokenLabel: string,
  label: string,
  id: Buffer,
): SecretKey {
  let found;
  try {
    found = session.find({ class: ObjectClass.SECRET_KEY, label, id });
  } catch (error) {
    throw toHsmError(error, `Searching the token for the key "${label}"`, 'hsm_unavailable');
  }
  if (found.length !== 1) {
    throw new HsmError(
      found.length === 0 ? 'hsm_key_missing' : 'hsm_key_invalid',
      `The token "${tokenLabel}" has ${found.length} secret keys labelled "${label}" with CKA_ID ${id.toString('hex')}, expected exactly one. Restore the token from its backup; data keys wrapped under this master key version cannot be unwrapped without it.`,
    );
  }

  const key = found.items(0).toType<SecretKey>();
  checkKeyAttributes(key, { label, keyType: KeyType.AES, required: ['wrap', 'unwrap'] });
  return key;
}

/** Generates the audit key on the token with a random 16-byte CKA_ID. */
export function generateAuditKey(session: Session): SecretKey {
  try {
    return session.generateKey(
      KeyGenMechanism.GENERIC_SECRET,
      auditKeyTemplate(crypto.randomBytes(16)),
    );
  } catch (error) {
    throw toHsmError(error, `Generating the audit key "${auditKeyLabel}"`);
  }
}

/** Returns CKA_ID of the key as lower-case hex. */
export function keyIdHex(key: SecretKey): string {
  return key.getAttribute({ id: null }).id?.toString('hex') ?? '';
}

interface KeyRequirements {
  label: string;
  keyType: KeyType;
  /** Boolean attributes that must be true. */
  required: ('wrap' | 'unwrap' | 'sign')[];
}

/**
 * Throws hsm_key_invalid unless the key has the expected type and length,
 * lives on the token, keeps its value inside it (CKA_SENSITIVE true,
 * CKA_EXTRACTABLE false) and allows the uses the appliance needs. A key
 * made by hand with weaker attributes is rejected rather than used.
 */
function checkKeyAttributes(key: SecretKey, requirements: KeyRequirements): void {
  let attributes: ITemplate;
  try {
    attributes = key.getAttribute({
      keyType: null,
      valueLen: null,
      token: null,
      sensitive: null,
      extractable: null,
      wrap: null,
      unwrap: null,
      sign: null,
    });
  } catch (error) {
    throw toHsmError(
      error,
      `Reading the attributes of the key "${requirements.label}"`,
      'hsm_unavailable',
    );
  }

  const problems: string[] = [];
  if (attributes.keyType !== requirements.keyType)
    problems.push(`CKA_KEY_TYPE is ${attributes.keyType}`);
  if (attributes.valueLen !== keyLength)
    problems.push(`CKA_VALUE_LEN is ${attributes.valueLen}, expected ${keyLength}`);
  if (attributes.token !== true) problems.push('CKA_TOKEN is false');
  if (attributes.sensitive !== true) problems.push('CKA_SENSITIVE is false');
  if (attributes.extractable !== false) problems.push('CKA_EXTRACTABLE is true');
  for (const use of requirements.required) {
    if (attributes[use] !== true) problems.push(`CKA_${use.toUpperCase()} is false`);
  }

  if (problems.length > 0) {
    throw new HsmError(
      'hsm_key_invalid',
      `The key "${requirements.label}" cannot be used: ${problems.join(', ')}. Delete it and run scripts/init-token.ts to generate a new one, but note that a new key cannot read what the old one protected.`,
    );
  }
}

/** Finds the master key and checks its attributes; throws hsm_key_missing or hsm_key_invalid. */
export function requireMasterKey(session: Session, tokenLabel: string): SecretKey {
  const key = findSecretKey(session, masterKeyLabel);
  if (key === null)
    throw missingKey(
      masterKeyLabel,
      tokenLabel,
      'cannot unwrap data keys wrapped under the old one',
    );

  checkKeyAttributes(key, {
    label: masterKeyLabel,
    keyType: KeyType.AES,
    required: ['wrap', 'unwrap'],
  });
  return key;
}

/** Finds the audit key and checks its attributes; throws hsm_key_missing or hsm_key_invalid. */
export function requireAuditKey(session: Session, tokenLabel: string): SecretKey {
  const key = findSecretKey(session, auditKeyLabel);
  if (key === null)
    throw missingKey(auditKeyLabel, tokenLabel, 'cannot verify audit HMACs made with the old one');

  checkKeyAttributes(key, {
    label: auditKeyLabel,
    keyType: KeyType.GENERIC_SECRET,
    required: ['sign'],
  });
  return key;
}

/** Builds the hsm_key_missing error; `loss` says what a replacement key could not do for old data. */
function missingKey(label: string, tokenLabel: string, loss: string): HsmError {
  return new HsmError(
    'hsm_key_missing',
    `The token "${tokenLabel}" has no secret key labelled "${label}". On a new installation, run scripts/init-token.ts to create it. If the key existed before, restore the token from its backup instead, because a new key ${loss}.`,
  );
}
