import { ApiError, setUnauthorizedHandler } from '../lib/api';
import { fetchCurrentUser, login, logout, type User } from './auth-api';

/** Sign-in state of the console. */
interface SessionState {
  /** `checking` until the first `/auth/me` request has finished. */
  phase: 'checking' | 'signed-out' | 'signed-in';
  user: User | null;
  /** Information for the sign-in page, such as why the previous session ended. */
  notice: string;
  /** Error of the last session check or sign-out, shown until the next attempt. */
  error: unknown;
}

export const session = $state<SessionState>({
  phase: 'checking',
  user: null,
  notice: '',
  error: null,
});

function signedIn(user: User): void {
  session.user = user;
  session.phase = 'signed-in';
  session.notice = '';
  session.error = null;
}

function signedOut(notice = ''): void {
  session.user = null;
  session.phase = 'signed-out';
  session.notice = notice;
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

/** Signs in; rejects with the ApiError of the request so the form can show it. */
export async function signIn(username: string, password: string): Promise<void> {
  session.error = null;
  signedIn(await login(username, password));
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
