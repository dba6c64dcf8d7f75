import { clearOpenSslErrorQueue } from './openssl-error-queue';

/**
 * Stable identifiers for HSM failures. Callers branch on these, so an
 * existing code must keep its meaning.
 */
export type HsmErrorCode =
  /** The PKCS#11 module or its configuration cannot be loaded, or the token stopped responding. */
  | 'hsm_unavailable'
  /** Another key provider or token set-up already holds the module in this process. */
  | 'hsm_in_use'
  /** No token carries the configured label, or no free slot is left to initialise one. */
  | 'hsm_token_missing'
  /** The PIN file is missing, unreadable or empty. */
  | 'hsm_pin_missing'
  /** The token rejected the PIN. */
  | 'hsm_pin_incorrect'
  /** The token locked the PIN after too many failed logins. */
  | 'hsm_pin_locked'
  /** A key the appliance needs is not on the token. */
  | 'hsm_key_missing'
  /** A key exists but has unsafe or unusable attributes, or its label is not unique. */
  | 'hsm_key_invalid'
  /** The token lacks a mechanism the appliance needs. */
  | 'hsm_mechanism_missing'
  /** A wrapped data key failed to unwrap: it was altered or wrapped under another master key. */
  | 'hsm_unwrap_failed'
  /** An authenticated decryption (CKM_AES_GCM) failed its tag check: the input was altered. */
  | 'hsm_decrypt_failed'
  /** The caller passed a value of the wrong type or length. */
  | 'hsm_invalid_input'
  /** The key provider was used after close(). */
  | 'hsm_closed'
  /** A PKCS#11 call failed for a reason not covered by the other codes. */
  | 'hsm_operation_failed';

/**
 * Failure of an HSM operation. Messages name the operation, the cause and
 * the next step, and never contain a PIN or key bytes.
 */
export class HsmError extends Error {
  override readonly name = 'HsmError';

  /** Stable identifier for programs and API responses. */
  readonly code: HsmErrorCode;

  /** Name of the PKCS#11 return value (CK_RV), e.g. `CKR_PIN_INCORRECT`, when a PKCS#11 call failed. */
  readonly ckr?: string;

  constructor(
    code: HsmErrorCode,
    message: string,
    options: { ckr?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.ckr = options.ckr;
  }
}

/**
 * Returns the CKR_ name of a PKCS#11 error thrown by pkcs11js (through
 * graphene-pk11), or undefined for any other error. pkcs11js sets the
 * message to the bare CK_RV name and `code` to its numeric value.
 */
export function ckrName(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;

  const numeric = (error as Error & { code?: unknown }).code;
  if (typeof numeric !== 'number') return undefined;

  return /^CKR_[A-Z0-9_]+$/.test(error.message) ? error.message : undefined;
}

/** Return values that mean the token, the session or the login is gone, not that the request was bad. */
const unavailableReturnValues = new Set([
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_DEVICE_REMOVED',
  'CKR_SESSION_CLOSED',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_USER_NOT_LOGGED_IN',
]);

/**
 * Converts an error thrown by a PKCS#11 call into an HsmError. `action`
 * names the failed step ("Wrapping the data key"); the code is
 * hsm_unavailable when the return value means the token or session is
 * gone, and `fallback` otherwise. An HsmError passes through unchanged.
 */
export function toHsmError(
  error: unknown,
  action: string,
  fallback: HsmErrorCode = 'hsm_operation_failed',
): HsmError {
  if (error instanceof HsmError) return error;

  clearOpenSslErrorQueue();
  const ckr = ckrName(error);
  if (ckr !== undefined && unavailableReturnValues.has(ckr)) {
    return new HsmError(
      'hsm_unavailable',
      `${action} failed with ${ckr}: the token, session or login is gone. Check that the HSM is reachable, then reopen the key provider.`,
      { ckr, cause: error },
    );
  }

  const reason = ckr ?? (error instanceof Error ? error.message : String(error));
  return new HsmError(
    fallback,
    `${action} failed with ${reason}. Check the HSM log and the PKCS#11 module configuration.`,
    { ckr, cause: error },
  );
}
