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

// A 401 from these endpoints means bad credentials or no session, not an expired one.
const authOptions = { ignoreUnauthorized: true };

export async function login(username: string, password: string): Promise<User> {
  const response = await apiPost<UserResponse>('/auth/login', { username, password }, authOptions);
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
