import { verifySignInWithSecurityKey } from '../account/webauthn-api';
import { ApiError, setUnauthorizedHandler } from '../lib/api';
import {
  fetchCurrentUser,
  login,
  logout,
  verifySecondFactor,
  type MfaChallenge,
  type SecondFactor,
  type User,
} from './auth-api';
import { clearEffectiveAccess, loadEffectiveAccess } from './effective-access.svelte';

/** Sign-in state of the console. */
interface SessionState {
  /** `checking` until the first `/auth/me` request has finished. */
  phase: 'checking' | 'signed-out' | 'signed-in';
  user: User | null;
  /** Set between a correct password and the second factor of an account with TOTP active. */
  mfaChallenge: MfaChallenge | null;
  /** Information for the sign-in page, such as why the previous session ended. */
  notice: string;
  /** Error of the last session check or sign-out, shown until the next attempt. */
  error: unknown;
}

export const session = $state<SessionState>({
  phase: 'checking',
  user: null,
  mfaChallenge: null,
  notice: '',
  error: null,
});

function signedIn(user: User): void {
  session.user = user;
  session.mfaChallenge = null;
  session.phase = 'signed-in';
  session.notice = '';
  session.error = null;
  // The appliance rejects every other request until a required password change is done, and
  // refreshUser signs in again after it.
  if (!user.mustChangePassword) void loadEffectiveAccess();
}

function signedOut(notice = ''): void {
  session.user = null;
  session.mfaChallenge = null;
  session.phase = 'signed-out';
  session.notice = notice;
  clearEffectiveAccess();
}

/** Ends the console session after another request returned 401. */
function expireSession(): void {
  if (session.phase !== 'signed-in') return;
  signedOut('Your session has ended. Sign in again to continue.');
}

/** Restores the session from the cookie, if the appliance still accepts it. */
export async function restoreSession(): Promise<void> {
  setUnauthorizedHandler(expireSession);
  try {
    signedIn(await fetchCurrentUser());
  } catch (error) {
    signedOut();
    if (!(error instanceof ApiError && error.status === 401)) session.error = error;
  }
}

/**
 * Signs in, or opens the second-factor step when the account has TOTP active. Rejects with
 * the ApiError of the request so the form can show it.
 */
export async function signIn(username: string, password: string): Promise<void> {
  session.error = null;
  const result = await login(username, password);
  if ('mfaRequired' in result) {
    session.mfaChallenge = result;
    session.notice = '';
    return;
  }
  signedIn(result);
}

/**
 * Completes the second-factor step. A 401 for an expired or missing challenge returns to the
 * password step with a notice. A wrong code rejects, so the form can show it.
 */
export async function completeSecondFactor(factor: SecondFactor): Promise<void> {
  await finishSecondFactor(() => verifySecondFactor(factor));
}

/**
 * Completes the second-factor step with a security key, which the browser prompts the user
 * to touch. Rejects like completeSecondFactor, or with the browser's DOMException when cancelled.
 */
export async function completeSecondFactorWithSecurityKey(): Promise<void> {
  await finishSecondFactor(async () => (await verifySignInWithSecurityKey<{ user: User }>()).user);
}

async function finishSecondFactor(verify: () => Promise<User>): Promise<void> {
  try {
    signedIn(await verify());
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && !isWrongCode(error)) {
      signedOut('The sign-in waited too long for its second factor. Sign in again.');
      return;
    }
    throw error;
  }
}

/** Leaves the second-factor step and shows the password form again. */
export function cancelSecondFactor(): void {
  signedOut();
}

/** Tells a rejected code (problem type `…/invalid_mfa_code`) from an expired challenge. */
function isWrongCode(error: ApiError): boolean {
  return error.problem.type.endsWith('invalid_mfa_code');
}

/** Re-reads the account after a password change, which clears `mustChangePassword`. */
export async function refreshUser(): Promise<void> {
  try {
    signedIn(await fetchCurrentUser());
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) throw error;
    signedOut('Your password was changed. Sign in with the new password.');
  }
}

/**
 * Signs out. If the request fails for another reason than an already ended session, the
 * console stays signed in and shows the error, because the session cookie is still valid.
 */
export async function signOut(): Promise<void> {
  try {
    await logout();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      session.error = error;
      return;
    }
  }
  signedOut('You have signed out.');
}
