import { ApiError, apiPost } from '../lib/api';

/** Session storage key that remembers a 404 from POST /auth/recovery in this browser tab. */
const UNAVAILABLE_KEY = 'console.recovery-unavailable';

/**
 * Tells whether the login page offers "Forgot password". The appliance has no endpoint that
 * reports whether recovery is configured, so the link shows until POST /auth/recovery has
 * returned 404 once in this tab.
 */
export function recoveryOffered(): boolean {
  return sessionStorage.getItem(UNAVAILABLE_KEY) === null;
}

/**
 * Requests a recovery link. The appliance returns 202 whether or not the account exists.
 * A 404 means that recovery by email is off, so the login page hides the link from then on.
 */
export async function requestRecovery(identifier: { username: string } | { email: string }) {
  try {
    await apiPost<unknown>('/auth/recovery', identifier, { ignoreUnauthorized: true });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404)
      sessionStorage.setItem(UNAVAILABLE_KEY, '1');
    throw error;
  }
}

/** Sets a new password with the token from the mailed link; the appliance ends every session. */
export function completeRecovery(token: string, newPassword: string): Promise<void> {
  return apiPost<void>(
    '/auth/recovery/complete',
    { token, newPassword },
    { ignoreUnauthorized: true },
  );
}
