import { MechanismEnum, MechanismFlag, type Slot } from 'graphene-pk11';

import { HsmError, toHsmError } from './errors';

/** A mechanism the appliance calls, with the functions (CKF_ flags) it uses it for. */
export interface RequiredMechanism {
  /** Mechanism name without the CKM_ prefix, as graphene-pk11 spells it. */
  name: keyof typeof MechanismEnum;
  /** The uses that must be allowed, e.g. WRAP and UNWRAP. */
  uses: (keyof typeof MechanismFlag)[];
}

/**
 * Mechanisms of the key provider. Data keys are wrapped with
 * CKM_AES_KEY_WRAP (RFC 3394) and not CKM_AES_KEY_WRAP_PAD, because
 * PKCS#11 2.40 defines the latter as PKCS#7 padding plus RFC 3394 while
 * SoftHSM implements it as RFC 5649, so its output differs between HSMs.
 * Data keys are 32 bytes, a multiple of 8, so they need no padding.
 * Signatures use CKM_ECDSA over a SHA-256 digest computed by the caller,
 * because SoftHSM 2.6.1 does not offer CKM_ECDSA_SHA256.
 */
export const keyProviderMechanisms: RequiredMechanism[] = [
  { name: 'AES_KEY_WRAP', uses: ['WRAP', 'UNWRAP'] },
  { name: 'SHA256_HMAC', uses: ['SIGN'] },
  { name: 'ECDSA', uses: ['SIGN'] },
];

/** Mechanisms that token set-up uses to generate the master key, the audit key and the signing key pair. */
export const tokenSetupMechanisms: RequiredMechanism[] = [
  { name: 'AES_KEY_GEN', uses: ['GENERATE'] },
  { name: 'GENERIC_SECRET_KEY_GEN', uses: ['GENERATE'] },
  { name: 'EC_KEY_PAIR_GEN', uses: ['GENERATE_KEY_PAIR'] },
];

/**
 * Throws hsm_mechanism_missing naming the first required mechanism that the
 * token does not list (C_GetMechanismList) or does not allow for a required
 * use (the CKF_ flags of C_GetMechanismInfo). Only the required mechanisms
 * are queried, so the check costs one call per required mechanism.
 */
export function checkMechanisms(slot: Slot, required: RequiredMechanism[]): void {
  let listed: Set<number>;
  try {
    listed = new Set(slot.lib.C_GetMechanismList(slot.handle));
  } catch (error) {
    throw toHsmError(
      error,
      'Listing the mechanisms of the token (C_GetMechanismList)',
      'hsm_unavailable',
    );
  }

  const available = new Map<number, number>();
  for (const mechanism of required) {
    const type = MechanismEnum[mechanism.name];
    if (!listed.has(type) || available.has(type)) continue;

    try {
      available.set(type, slot.lib.C_GetMechanismInfo(slot.handle, type).flags);
    } catch (error) {
      throw toHsmError(
        error,
        `Reading the flags of CKM_${mechanism.name} (C_GetMechanismInfo)`,
        'hsm_unavailable',
      );
    }
  }

  checkMechanismSupport(available, required);
}

/**
 * Throws hsm_mechanism_missing naming the first required mechanism that is
 * missing from `available` (mechanism type to its CKF_ flags) or lacks a
 * flag for a required use.
 */
export function checkMechanismSupport(
  available: ReadonlyMap<number, number>,
  required: RequiredMechanism[],
): void {
  for (const mechanism of required) {
    const flags = available.get(MechanismEnum[mechanism.name]);
    if (flags === undefined) {
      throw new HsmError(
        'hsm_mechanism_missing',
        `The token does not support CKM_${mechanism.name}, which the appliance needs for ${mechanism.uses.join('/')}. Use an HSM or firmware that provides it.`,
      );
    }

    const missingUses = mechanism.uses.filter((use) => (flags & MechanismFlag[use]) === 0);
    if (missingUses.length > 0) {
      throw new HsmError(
        'hsm_mechanism_missing',
        `The token supports CKM_${mechanism.name} but not for ${missingUses.join('/')} (CKF_ flags of C_GetMechanismInfo). Use an HSM or firmware that allows it.`,
      );
    }
  }
}
