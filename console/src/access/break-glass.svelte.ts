import { effectiveAccess, loadEffectiveAccess } from '../auth/effective-access.svelte';
import { ApiError } from '../lib/api';
import { listActivations, type Activation } from './access-api';

/**
 * Break-glass activations as the Emergency access page lists them. Whether the signed-in user
 * holds break-glass access comes from GET /access/me instead (see openBreakGlassGrant), because
 * every user may read that, also without evidence:read.
 */
interface BreakGlassState {
  items: Activation[];
  /** The signed-in user's open activation, once this console opened or listed it. */
  own: Activation | null;
  /** False when the user may not list activations (GET /access/break-glass needs evidence:read). */
  visible: boolean;
  error: unknown;
}

export const breakGlass = $state<BreakGlassState>({
  items: [],
  own: null,
  visible: true,
  error: null,
});

/**
 * Reloads the activations and picks the open one of `userId`. Without evidence:read in the
 * user's effective permissions it sends no request, because the appliance would reject it.
 */
export async function refreshBreakGlass(userId: string): Promise<void> {
  if (!effectiveAccess.permissions.includes('evidence:read')) {
    breakGlass.visible = false;
    return;
  }
  try {
    const items = await listActivations();
    breakGlass.items = items;
    breakGlass.own = items.find((item) => item.active && item.userId === userId) ?? null;
    breakGlass.visible = true;
    breakGlass.error = null;
  } catch (error) {
    // The permissions may have changed since GET /access/me returned.
    if (error instanceof ApiError && error.status === 403) {
      breakGlass.visible = false;
      return;
    }
    breakGlass.error = error;
  }
}

/**
 * Records an activation that this console opened, ended or reviewed. When it is the user's
 * own, their permissions change, so the console reloads them and then the list, which the
 * break-glass role may read. Resolves once both have returned.
 */
export async function rememberActivation(activation: Activation, userId: string): Promise<void> {
  breakGlass.items = [activation, ...breakGlass.items.filter((item) => item.id !== activation.id)];
  if (activation.userId !== userId) return;

  breakGlass.own = activation.active ? activation : null;
  await loadEffectiveAccess();
  await refreshBreakGlass(userId);
}

/**
 * Finds the activation behind the user's open break-glass grant, which the end request needs.
 * After a page load the console has only the grant, so it lists the activations, which the
 * break-glass role may do because it inherits admin.
 */
export async function findOwnActivation(
  grantId: string,
  userId: string,
): Promise<Activation | undefined> {
  if (breakGlass.own?.grantId === grantId) return breakGlass.own;
  await refreshBreakGlass(userId);
  return breakGlass.items.find((item) => item.active && item.grantId === grantId);
}
