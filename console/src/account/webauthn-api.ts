import { ApiError, apiDelete, apiGet, apiPatch, apiPost, segment } from '../lib/api';
// Type-only imports of the appliance's response shapes, erased by the build.
import type { CredentialSummary } from '../../../appliance/identity/webauthn/credentials';
import type { Device } from '../../../appliance/identity/devices/devices';

export type { CredentialSummary, Device };

/** A device of the signed-in user; `current` marks the browser that sent the request. */
export type OwnDevice = Device & { current: boolean };

interface Items<T> {
  items: T[];
}

/** The JSON registration options that POST /auth/mfa/webauthn/register/options returns. */
interface CreationOptionsJSON {
  rp: PublicKeyCredentialRpEntity;
  user: { id: string; name: string; displayName: string };
  challenge: string;
  pubKeyCredParams: PublicKeyCredentialParameters[];
  timeout?: number;
  excludeCredentials?: Array<{ id: string; type: 'public-key'; transports?: string[] }>;
  authenticatorSelection?: AuthenticatorSelectionCriteria;
  attestation?: AttestationConveyancePreference;
  extensions?: AuthenticationExtensionsClientInputs;
}

export async function listSecurityKeys(): Promise<CredentialSummary[]> {
  return (await apiGet<Items<CredentialSummary>>('/auth/mfa/webauthn/credentials')).items;
}

export function renameSecurityKey(id: string, name: string): Promise<void> {
  return apiPatch<void>(`/auth/mfa/webauthn/credentials/${segment(id)}`, { name });
}

export function deleteSecurityKey(id: string): Promise<void> {
  return apiDelete(`/auth/mfa/webauthn/credentials/${segment(id)}`);
}

export async function listDevices(): Promise<OwnDevice[]> {
  return (await apiGet<Items<OwnDevice>>('/auth/devices')).items;
}

export function trustDevice(id: string): Promise<void> {
  return apiPost<void>(`/auth/devices/${segment(id)}/trust`);
}

export function revokeDevice(id: string): Promise<void> {
  return apiDelete(`/auth/devices/${segment(id)}`);
}

/**
 * Registers a security key: fetches options from the appliance, lets the browser create the
 * credential (the user touches the key), and sends the attestation back for verification.
 * Rejects with a DOMException when the user cancels or the browser refuses.
 */
export async function registerSecurityKey(name: string): Promise<CredentialSummary> {
  const options = await apiPost<CreationOptionsJSON>('/auth/mfa/webauthn/register/options');
  const credential = (await navigator.credentials.create({
    publicKey: toCreationOptions(options),
  })) as PublicKeyCredential | null;
  if (!credential) throw new Error('The browser created no credential; try again.');

  const response = credential.response as AuthenticatorAttestationResponse;
  return apiPost<CredentialSummary>('/auth/mfa/webauthn/register/verify', {
    name,
    response: {
      id: credential.id,
      rawId: toBase64Url(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
      response: {
        clientDataJSON: toBase64Url(response.clientDataJSON),
        attestationObject: toBase64Url(response.attestationObject),
        transports: response.getTransports?.() ?? [],
      },
    },
  });
}

function toCreationOptions(options: CreationOptionsJSON): PublicKeyCredentialCreationOptions {
  return {
    ...options,
    challenge: fromBase64Url(options.challenge),
    user: { ...options.user, id: fromBase64Url(options.user.id) },
    excludeCredentials: (options.excludeCredentials ?? []).map((item) => ({
      type: item.type,
      id: fromBase64Url(item.id),
      transports: item.transports as AuthenticatorTransport[] | undefined,
    })),
  };
}

/** The JSON assertion options of the sign-in and step-up ceremonies. */
interface RequestOptionsJSON {
  challenge: string;
  rpId?: string;
  timeout?: number;
  allowCredentials?: Array<{ id: string; type: 'public-key'; transports?: string[] }>;
  userVerification?: UserVerificationRequirement;
  extensions?: AuthenticationExtensionsClientInputs;
}

/** Lets the browser sign the challenge with a registered key and returns the JSON response. */
async function signChallenge(options: RequestOptionsJSON) {
  const credential = (await navigator.credentials.get({
    publicKey: {
      ...options,
      challenge: fromBase64Url(options.challenge),
      allowCredentials: (options.allowCredentials ?? []).map((item) => ({
        type: item.type,
        id: fromBase64Url(item.id),
        transports: item.transports as AuthenticatorTransport[] | undefined,
      })),
    },
  })) as PublicKeyCredential | null;
  if (!credential) throw new Error('The browser returned no security key response; try again.');

  const response = credential.response as AuthenticatorAssertionResponse;
  return {
    id: credential.id,
    rawId: toBase64Url(credential.rawId),
    type: credential.type,
    clientExtensionResults: credential.getClientExtensionResults(),
    response: {
      clientDataJSON: toBase64Url(response.clientDataJSON),
      authenticatorData: toBase64Url(response.authenticatorData),
      signature: toBase64Url(response.signature),
      userHandle: response.userHandle ? toBase64Url(response.userHandle) : undefined,
    },
  };
}

/**
 * Marks the current session as having passed a second factor with a security key, which the
 * appliance requires before it registers a further key, deletes one or trusts a device.
 */
export async function stepUpWithSecurityKey(): Promise<void> {
  const options = await apiPost<RequestOptionsJSON>('/auth/mfa/webauthn/step-up/options');
  await apiPost<unknown>('/auth/mfa/webauthn/step-up/verify', {
    response: await signChallenge(options),
  });
}

/**
 * Runs `action`, and retries it once after a security key check when the appliance rejects
 * it with 403 because this session passed no second factor. With `canStepUp` false, meaning
 * the account has no key, the 403 is passed on unchanged.
 */
export async function withSecurityKeyStepUp<T>(
  action: () => Promise<T>,
  canStepUp: boolean,
): Promise<T> {
  try {
    return await action();
  } catch (error) {
    const needsSecondFactor =
      error instanceof ApiError &&
      error.status === 403 &&
      /second factor/.test(error.problem.detail ?? '');
    if (!needsSecondFactor || !canStepUp) throw error;
    await stepUpWithSecurityKey();
    return action();
  }
}

/** Completes a sign-in that waits for its second factor with a security key. */
export async function verifySignInWithSecurityKey<T>(): Promise<T> {
  const quiet = { ignoreUnauthorized: true };
  const options = await apiPost<RequestOptionsJSON>('/auth/mfa/webauthn/options', undefined, quiet);
  return apiPost<T>('/auth/mfa/webauthn/verify', { response: await signChallenge(options) }, quiet);
}

/** Encodes bytes as base64url without padding, the encoding WebAuthn JSON uses. */
export function toBase64Url(buffer: ArrayBuffer): string {
  let binary = '';
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Decodes base64url with or without padding. */
export function fromBase64Url(text: string): ArrayBuffer {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
  return bytes.buffer;
}
