import { fetchOwnAccess, type OwnAccess } from '../access/access-api';
import type { PermissionName } from './permissions';

/** One effective grant of the signed-in user, as GET /access/me lists it. */
export type OwnGrant = OwnAccess['grants'][number];

/** The signed-in user's effective access, which every page flag of the console derives from. */
interface EffectiveAccessState {
  /** `loading` until the first GET /access/me of this session has returned. */
  phase: 'signed-out' | 'loading' | 'loaded' | 'failed';
  /** Permissions of every grant whose conditions are met now, at any scope. */
  permissions: PermissionName[];
  grants: OwnGrant[];
  /** Error of the last request, shown until the next one succeeds. */
  error: unknown;
}

export const effectiveAccess = $state<EffectiveAccessState>({
  phase: 'signed-out',
  permissions: [],
  grants: [],
  error: null,
});

// Counts requests, so that a slow response never overwrites the one of a later request.
let latestRequest = 0;

/**
 * Reloads the signed-in user's permissions and grants. Call it after sign-in, on a page load
 * and whenever the user's access changes in this console, such as when break-glass opens or
 * ends. After a failed request the console keeps the permissions it had, and shows nothing
 * if it had none.
 */
export async function loadEffectiveAccess(): Promise<void> {
  const request = ++latestRequest;
  if (effectiveAccess.phase === 'signed-out') effectiveAccess.phase = 'loading';
  try {
    const access = await fetchOwnAccess();
    if (request !== latestRequest) return;
    effectiveAccess.permissions = access.permissions;
    effectiveAccess.grants = access.grants;
    effectiveAccess.phase = 'loaded';
    effectiveAccess.error = null;
  } catch (error) {
    if (request !== latestRequest) return;
    effectiveAccess.error = error;
    if (effectiveAccess.phase === 'loading') effectiveAccess.phase = 'failed';
  }
}

/** Forgets the access of the user who signed out, and ignores responses still on the way. */
export function clearEffectiveAccess(): void {
  latestRequest++;
  effectiveAccess.phase = 'signed-out';
  effectiveAccess.permissions = [];
  effectiveAccess.grants = [];
  effectiveAccess.error = null;
}

/** Returns the user's open break-glass grant at `now` (milliseconds since the epoch), if any. */
export function openBreakGlassGrant(now: number): OwnGrant | undefined {
  return effectiveAccess.grants.find(
    (grant) =>
      grant.source === 'break-glass' &&
      grant.expiresAt !== null &&
      Date.parse(grant.expiresAt) > now,
  );
}
