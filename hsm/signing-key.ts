import crypto from 'node:crypto';

import {
  KeyGenMechanism,
  KeyType,
  ObjectClass,
  type ITemplate,
  type PrivateKey,
  type PublicKey,
  type Session,
} from 'graphene-pk11';

import { findKeyObject } from './appliance-keys';
import { HsmError, toHsmError } from './errors';

/** CKA_LABEL of both halves of the ECDSA P-256 signing key pair. */
export const signingKeyLabel = 'appliance-signing';

/** CKA_EC_PARAMS of P-256: the DER encoding of the OID 1.2.840.10045.3.1.7 (prime256v1, RFC 5480). */
const p256Parameters = Buffer.from('06082a8648ce3d030107', 'hex');

/** Length in bytes of a P-256 coordinate, and so of r and s in a signature. */
const coordinateLength = 32;

/**
 * Generates the signing key pair on the token. The private key can only
 * sign, and its value never leaves the token. Both halves share a random
 * 16-byte CKA_ID, as PKCS#11 tools expect of a key pair.
 */
export function generateSigningKeyPair(session: Session): void {
  const id = crypto.randomBytes(16);
  const publicTemplate: ITemplate = {
    class: ObjectClass.PUBLIC_KEY,
    keyType: KeyType.EC,
    paramsEC: p256Parameters,
    label: signingKeyLabel,
    id,
    token: true,
    private: false,
    verify: true,
    encrypt: false,
    wrap: false,
    derive: false,
    modifiable: false,
  };
  const privateTemplate: ITemplate = {
    class: ObjectClass.PRIVATE_KEY,
    keyType: KeyType.EC,
    label: signingKeyLabel,
    id,
    token: true,
    private: true,
    sensitive: true,
    extractable: false,
    sign: true,
    decrypt: false,
    unwrap: false,
    derive: false,
    modifiable: false,
    copyable: false,
  };

  try {
    session.generateKeyPair(KeyGenMechanism.EC, publicTemplate, privateTemplate);
  } catch (error) {
    throw toHsmError(error, `Generating the signing key pair "${signingKeyLabel}"`);
  }
}

/** Returns whether the token contains a private key with the label of the signing key. */
export function hasSigningKey(session: Session): boolean {
  return findKeyObject(session, ObjectClass.PRIVATE_KEY, signingKeyLabel) !== null;
}

/** The two halves of the signing key pair, checked by requireSigningKeyPair(). */
export interface SigningKeyPair {
  privateKey: PrivateKey;
  publicKey: PublicKey;
  /** SubjectPublicKeyInfo of the public key, PEM. */
  publicKeyPem: string;
  /** CKA_ID shared by both halves, hex. */
  id: string;
}

/**
 * Finds both halves of the signing key pair and checks them: P-256, the
 * private key sensitive, not extractable and allowed to sign. Throws
 * hsm_key_missing or hsm_key_invalid.
 */
export function requireSigningKeyPair(session: Session, tokenLabel: string): SigningKeyPair {
  const privateObject = findKeyObject(session, ObjectClass.PRIVATE_KEY, signingKeyLabel);
  const publicObject = findKeyObject(session, ObjectClass.PUBLIC_KEY, signingKeyLabel);
  if (privateObject === null || publicObject === null) {
    throw new HsmError(
      'hsm_key_missing',
      `The token "${tokenLabel}" has no complete key pair labelled "${signingKeyLabel}" (private key ${privateObject === null ? 'missing' : 'present'}, public key ${publicObject === null ? 'missing' : 'present'}). Run scripts/init-token.ts to create it, after deleting any half that is left. Signatures made with the old key pair still verify with its saved public key.`,
    );
  }
  const privateKey = privateObject.toType<PrivateKey>();
  const publicKey = publicObject.toType<PublicKey>();

  // graphene-pk11 2.3.6 names CKA_EC_PARAMS `paramsECDSA` in what it reads
  // back, whichever of its two names the request used.
  let privateAttributes: ITemplate;
  let publicAttributes: ITemplate;
  try {
    privateAttributes = privateKey.getAttribute({
      keyType: null,
      paramsECDSA: null,
      id: null,
      sensitive: null,
      extractable: null,
      sign: null,
    });
    publicAttributes = publicKey.getAttribute({
      keyType: null,
      paramsECDSA: null,
      id: null,
      pointEC: null,
    });
  } catch (error) {
    throw toHsmError(
      error,
      `Reading the attributes of the key pair "${signingKeyLabel}"`,
      'hsm_unavailable',
    );
  }

  const problems: string[] = [];
  if (privateAttributes.keyType !== KeyType.EC)
    problems.push(`CKA_KEY_TYPE of the private key is ${privateAttributes.keyType}`);
  if (publicAttributes.keyType !== KeyType.EC)
    problems.push(`CKA_KEY_TYPE of the public key is ${publicAttributes.keyType}`);
  if (!p256Parameters.equals(privateAttributes.paramsECDSA ?? Buffer.alloc(0)))
    problems.push('the private key is not on P-256');
  if (!p256Parameters.equals(publicAttributes.paramsECDSA ?? Buffer.alloc(0)))
    problems.push('the public key is not on P-256');
  if (!Buffer.from(privateAttributes.id ?? []).equals(Buffer.from(publicAttributes.id ?? [])))
    problems.push('the halves have different CKA_IDs');
  if (privateAttributes.sensitive !== true) problems.push('CKA_SENSITIVE is false');
  if (privateAttributes.extractable !== false) problems.push('CKA_EXTRACTABLE is true');
  if (privateAttributes.sign !== true) problems.push('CKA_SIGN is false');

  if (problems.length > 0) {
    throw new HsmError(
      'hsm_key_invalid',
      `The key pair "${signingKeyLabel}" cannot be used: ${problems.join(', ')}. Delete both halves and run scripts/init-token.ts to generate a new pair.`,
    );
  }

  return {
    privateKey,
    publicKey,
    publicKeyPem: publicKeyPem(publicAttributes.pointEC as Buffer),
    id: Buffer.from(privateAttributes.id as Buffer).toString('hex'),
  };
}

/**
 * Converts CKA_EC_POINT of a P-256 public key into SubjectPublicKeyInfo PEM.
 * PKCS#11 2.40 stores the point as a DER OCTET STRING around the
 * uncompressed SEC 1 point (0x04, X, Y); some modules omit the OCTET STRING.
 */
function publicKeyPem(ecPoint: Buffer): string {
  const uncompressedLength = 1 + 2 * coordinateLength;
  let point = ecPoint;
  if (
    point.length === uncompressedLength + 2 &&
    point[0] === 0x04 &&
    point[1] === uncompressedLength
  ) {
    point = point.subarray(2);
  }
  if (point.length !== uncompressedLength || point[0] !== 0x04) {
    throw new HsmError(
      'hsm_key_invalid',
      `CKA_EC_POINT of the public key "${signingKeyLabel}" is not an uncompressed P-256 point (${ecPoint.length} bytes). Delete both halves and run scripts/init-token.ts.`,
    );
  }

  const key = crypto.createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: point.subarray(1, 1 + coordinateLength).toString('base64url'),
      y: point.subarray(1 + coordinateLength).toString('base64url'),
    },
    format: 'jwk',
  });
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

/** Encodes one unsigned big-endian integer as a DER INTEGER. */
function derInteger(value: Buffer): Buffer {
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start++;

  let content = value.subarray(start);
  if ((content[0] & 0x80) !== 0) content = Buffer.concat([Buffer.from([0]), content]);
  return Buffer.concat([Buffer.from([0x02, content.length]), content]);
}

/**
 * Converts the output of CKM_ECDSA (r and s, each 32 bytes big-endian, as
 * PKCS#11 2.40 section 2.3.1 defines it) into the DER ECDSA-Sig-Value of
 * RFC 3279 that OpenSSL and X.509 expect.
 */
export function ecdsaSignatureToDer(raw: Buffer): Buffer {
  if (raw.length !== 2 * coordinateLength) {
    throw new HsmError(
      'hsm_operation_failed',
      `CKM_ECDSA returned ${raw.length} bytes instead of ${2 * coordinateLength} for a P-256 signature. Check the PKCS#11 module.`,
    );
  }

  const body = Buffer.concat([
    derInteger(raw.subarray(0, coordinateLength)),
    derInteger(raw.subarray(coordinateLength)),
  ]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}
