import {
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';

import { ProblemError } from '../../http/problem';
import type { WebAuthnCredentials, StoredCredential } from './credentials';
import { expectedOrigins, type WebAuthnSettings } from './settings';

/** Problem code of every rejected assertion; the MFA challenge counts these as failures. */
export const invalidAssertionCode = 'invalid_webauthn_assertion';

export function invalidAssertion(detail: string): ProblemError {
  return new ProblemError(401, invalidAssertionCode, 'Invalid security key response', detail);
}

/** A verified assertion, or the problem to raise for a rejected one. */
export type AssertionOutcome =
  | { credential: StoredCredential; newCounter: number; rejection?: undefined }
  | { rejection: ProblemError };

/**
 * Verifies an assertion against the challenge the server issued, a credential
 * of `userId` only, the RP id and origins, and the signature counter (the
 * library rejects a counter that did not grow, unless both are 0). User
 * verification is preferred, not required.
 */
export async function checkAssertion(
  settings: WebAuthnSettings,
  credentials: WebAuthnCredentials,
  input: {
    userId: string;
    challenge: string | undefined;
    response: AuthenticationResponseJSON;
    localPort: number | undefined;
  },
): Promise<AssertionOutcome> {
  if (!input.challenge)
    return {
      rejection: invalidAssertion(
        'No security key challenge is pending for this sign-in, or it expired or was already used; request new options and try again.',
      ),
    };

  const credential = await credentials.findOwned(input.userId, input.response.id);
  if (!credential)
    return {
      rejection: invalidAssertion(
        'This security key is not registered to this account; use a key registered to it, or another second factor.',
      ),
    };

  try {
    const result = await verifyAuthenticationResponse({
      response: input.response,
      expectedChallenge: input.challenge,
      expectedOrigin: expectedOrigins(settings, input.localPort),
      expectedRPID: settings.rpId,
      credential: {
        id: credential.credentialId,
        publicKey: credential.publicKey as Uint8Array<ArrayBuffer>,
        counter: credential.counter,
        transports: credential.transports,
      },
      requireUserVerification: false,
    });
    if (!result.verified)
      return { rejection: invalidAssertion('The security key signature does not verify.') };
    return { credential, newCounter: result.authenticationInfo.newCounter };
  } catch (error) {
    return {
      rejection: invalidAssertion(
        `The security key response was rejected: ${(error as Error).message}`,
      ),
    };
  }
}

/** Verifies a registration response; throws a 400 problem naming `response` when it fails. */
export async function checkRegistration(
  settings: WebAuthnSettings,
  input: { challenge: string; response: RegistrationResponseJSON; localPort: number | undefined },
) {
  const rejected = (reason: string) =>
    new ProblemError(
      400,
      'invalid_request',
      'Invalid request',
      `response: the security key registration was rejected (${reason}); request new options and try again.`,
      [{ field: 'response', message: 'rejected by WebAuthn verification' }],
    );

  let result;
  try {
    result = await verifyRegistrationResponse({
      response: input.response,
      expectedChallenge: input.challenge,
      expectedOrigin: expectedOrigins(settings, input.localPort),
      expectedRPID: settings.rpId,
      requireUserVerification: false,
    });
  } catch (error) {
    throw rejected((error as Error).message);
  }
  if (!result.verified) throw rejected('the attestation does not verify');
  return result.registrationInfo;
}
