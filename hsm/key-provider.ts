/**
 * The contract between the appliance and its HSM. Everything that speaks
 * PKCS#11 lives in hsm/; the rest of the appliance sees only this interface.
 */
export interface KeyProvider {
  /** PKCS#11 URI (RFC 7512) of the master key that wraps data keys. */
  readonly masterKeyUri: string;

  /** PKCS#11 URI (RFC 7512) of the generic-secret key behind the audit HMAC. */
  readonly auditKeyUri: string;

  /** PKCS#11 URI (RFC 7512) of the private half of the ECDSA P-256 signing key pair. */
  readonly signingKeyUri: string;

  /** Wraps a 32-byte AES-256 data key under the master key; the result is safe to store. */
  wrapDataKey(dataKey: Buffer): Buffer;

  /** Unwraps a stored data key; throws HsmError when the wrapped bytes were altered. */
  unwrapDataKey(wrapped: Buffer): Buffer;

  /** Computes HMAC-SHA256 inside the token with the audit key. */
  auditHmac(data: Buffer): Buffer;

  /**
   * Signs a 32-byte SHA-256 digest with the ECDSA P-256 private key inside
   * the token and returns the DER-encoded ECDSA-Sig-Value (RFC 3279), which
   * `openssl dgst -sha256 -verify` accepts for the undigested data.
   */
  signDigest(digest: Buffer): Buffer;

  /** Returns the public half of the signing key pair as SubjectPublicKeyInfo PEM. */
  signingPublicKeyPem(): string;

  /** Reports whether the token is reachable and logged in. */
  health(): { ok: boolean; tokenLabel: string; detail?: string };

  /** Logs out and finalises the PKCS#11 module. */
  close(): void;
}
