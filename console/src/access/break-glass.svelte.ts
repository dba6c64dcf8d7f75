import { ApiError } from '../lib/api';
import { listActivations, type Activation } from './access-api';

/** Break-glass activations as the banner and the Emergency access page share them. */
interface BreakGlassState {
  items: Activation[];
  /** The signed-in user's open activation, if any. */
  own: Activation | null;
  /** False when the role may not list activations (GET /access/break-glass needs evidence:read). */
  visible: boolean;
  error: unknown;
}

export const breakGlass = $state<BreakGlassState>({
  items: [],
  own: null,
  visible: true,
  error: null,
});

/** Reloads the activations and picks the open one of `userId`. */
export async function refreshBreakGlass(userId: string): Promise<void> {
  try {
    const items = await listActivations();
    breakGlass.items = items;
    breakGlass.own = items.find((item) => item.active && item.userId === userId) ?? null;
    breakGlass.visible = true;
    breakGlass.error = null;
  } catch (error) {
    // NOTE: a role without evidence:read cannot list activations. Its banner shows only an
    // activation opened in this tab, not one opened in another tab or browser.
    if (error instanceof ApiError && error.status === 403) {
      breakGlass.visible = false;
      return;
    }
    breakGlass.error = error;
  }
}

/** Records an activation that this console opened, ended or reviewed. */
export function rememberActivation(activation: Activation, userId: string): void {
  breakGlass.items = [activation, ...breakGlass.items.filter((item) => item.id !== activation.id)];
  if (activation.userId === userId) breakGlass.own = activation.active ? activation : null;
}
