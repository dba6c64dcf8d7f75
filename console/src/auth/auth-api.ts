import { apiGet, apiPost, type Id } from '../lib/api';

/** Account roles that the appliance knows; see permissions.ts for what each may do. */
export type Role = 'admin' | 'author' | 'analyst' | 'auditor';

/** The signed-in account. */
export interface User {
  id: Id;
  username: string;
  role: Role;
  /** True while the account still uses a one-time password that must be replaced first. */
  mustChangePassword: boolean;
}

interface UserResponse {
  user: User;
}

/**
 * Response of POST /auth/login for an account with TOTP active: the password was right, and
 * a short-lived challenge cookie now waits for POST /auth/mfa/verify.
 */
export interface MfaChallenge {
  mfaRequired: true;
  /** Second factors the appliance accepts, such as `totp` and `recovery_code`. */
  methods: string[];
  /** End of the challenge (ISO 8601); after it the user signs in with the password again. */
  expiresAt: string;
}

/** The second factor of a sign-in: a code from the authenticator app or a recovery code. */
export type SecondFactor = { code: string } | { recoveryCode: string };

// A 401 from these endpoints means bad credentials or no session, not an expired one.
const authOptions = { ignoreUnauthorized: true };

/** Checks the password; returns the account, or the challenge when a second factor is due. */
export async function login(username: string, password: string): Promise<User | MfaChallenge> {
  const response = await apiPost<UserResponse | MfaChallenge>(
    '/auth/login',
    { username, password },
    authOptions,
  );
  return 'mfaRequired' in response ? response : response.user;
}

/** Completes a sign-in that waits for its second factor; the challenge cookie names the account. */
export async function verifySecondFactor(factor: SecondFactor): Promise<User> {
  const response = await apiPost<UserResponse>('/auth/mfa/verify', factor, authOptions);
  return response.user;
}

export async function logout(): Promise<void> {
  await apiPost<void>('/auth/logout', undefined, authOptions);
}

/** Fetches the account of the current session; rejects with a 401 ApiError when there is none. */
export async function fetchCurrentUser(): Promise<User> {
  const response = await apiGet<UserResponse>('/auth/me', authOptions);
  return response.user;
}

export async function changePassword(currentPassword: string, newPassword: string): Promise<void> {
  await apiPost<void>('/auth/password', { currentPassword, newPassword }, authOptions);
}
