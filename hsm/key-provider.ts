/**
 * A tenant key as the appliance stores it: a 32-byte AES-256 key wrapped
 * (RFC 3394) under a master key version. It wraps the data keys of one
 * tenant, so a master key rotation rewraps tenant keys, not data keys.
 */
export interface WrappedTenantKey {
  wrapped: Buffer;
  /** PKCS#11 URI (RFC 7512) of the master key version that wraps it. */
  masterKeyUri: string;
}

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

  /**
   * Wraps a 32-byte AES-256 data key under the master key version at
   * `masterKeyUri` (default: version 1, `masterKeyUri`); the result is safe to store.
   */
  wrapDataKey(dataKey: Buffer, masterKeyUri?: string): Buffer;

  /**
   * Unwraps a stored data key under the master key version at `masterKeyUri`
   * (default: version 1); throws HsmError when the wrapped bytes were altered.
   */
  unwrapDataKey(wrapped: Buffer, masterKeyUri?: string): Buffer;

  /**
   * Unwraps a data key under one master key version and wraps it under
   * another, both inside the token, so the plaintext key never enters this
   * process. Throws hsm_unwrap_failed when the wrapped bytes were altered.
   */
  rewrapDataKey(wrapped: Buffer, fromMasterKeyUri: string, toMasterKeyUri: string): Buffer;

  /**
   * Wraps a 32-byte data key under a tenant key. The tenant key is unwrapped
   * inside the token into a session object that cannot be read or
   * extracted, and the provider keeps a bounded number of them for later calls.
   */
  wrapDataKeyUnder(tenantKey: WrappedTenantKey, dataKey: Buffer): Buffer;

  /**
   * Unwraps a data key stored wrapped by a tenant key; throws HsmError
   * hsm_unwrap_failed when the data key or the tenant key was altered.
   */
  unwrapDataKeyUnder(tenantKey: WrappedTenantKey, wrapped: Buffer): Buffer;

  /**
   * Moves a data key from one tenant key version to another inside the
   * token, so the plaintext key never enters this process.
   */
  rewrapDataKeyBetween(wrapped: Buffer, from: WrappedTenantKey, to: WrappedTenantKey): Buffer;

  /** Generates master key version `version` (2 or later) on the token and returns its PKCS#11 URI. */
  createMasterKeyVersion(version: number): string;

  /** Destroys a master key version that a failed rotation generated but never recorded. */
  destroyMasterKeyVersion(masterKeyUri: string): void;

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

  /**
   * Reports whether the token is reachable, logged in and still contains the
   * master key version at `activeMasterKeyUri` (default: version 1). The key
   * is searched for again on each call, so a key deleted from the token
   * shows up here before the next wrap fails.
   */
  health(activeMasterKeyUri?: string): { ok: boolean; tokenLabel: string; detail?: string };

  /** Logs out and finalises the PKCS#11 module. */
  close(): void;
}
