import { apiGet, apiPatch, apiPost, segment } from '../lib/api';
import type { Role } from '../auth/auth-api';
import type { ChangeRequest } from '../access/access-api';

/** Roles in the order the console offers them. */
export const ROLES: readonly Role[] = ['admin', 'author', 'analyst', 'auditor'];

/** A user account as the administration routes return it. */
export interface ManagedUser {
  id: string;
  username: string;
  role: Role;
  /** True until the user has replaced the one-time password. */
  mustChangePassword: boolean;
  createdAt?: string;
  /**
   * Set by PATCH /users/:id. NOTE: GET /users does not return it, so a list row shows the
   * state only after the console changed it.
   */
  disabled?: boolean;
}

export async function listUsers(): Promise<ManagedUser[]> {
  return (await apiGet<{ items: ManagedUser[] }>('/users')).items;
}

/** Creates an account that must replace `password` at its first sign-in. */
export function createUser(input: {
  username: string;
  password: string;
  role: Role;
}): Promise<ManagedUser> {
  return apiPost<ManagedUser>('/users', input);
}

/**
 * Changes the role or the disabled flag; the appliance ends the user's sessions either way.
 * With ACCESS_CHANGE_APPROVAL on, a role change returns 202 with a change request instead.
 */
export function updateUser(
  id: string,
  change: { role?: Role; disabled?: boolean },
): Promise<(ManagedUser & { disabled: boolean }) | { changeRequest: ChangeRequest }> {
  return apiPatch(`/users/${segment(id)}`, change);
}

/** Alphabet of generated one-time passwords, without the look-alikes 0, O, o, 1, I and l. */
const PASSWORD_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789';

/** Length of a generated one-time password: about 116 bits from 56 symbols. */
const PASSWORD_LENGTH = 20;

/**
 * Generates a random one-time password with the browser's CSPRNG. Rejection sampling keeps
 * every symbol equally likely.
 */
export function generateOneTimePassword(): string {
  const limit = 256 - (256 % PASSWORD_ALPHABET.length);
  let password = '';
  while (password.length < PASSWORD_LENGTH) {
    for (const byte of crypto.getRandomValues(new Uint8Array(PASSWORD_LENGTH))) {
      if (byte < limit && password.length < PASSWORD_LENGTH)
        password += PASSWORD_ALPHABET[byte % PASSWORD_ALPHABET.length];
    }
  }
  return password;
}
