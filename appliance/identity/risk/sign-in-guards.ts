import type { Database } from '../../platform/database';
import { DeviceStore } from '../devices/devices';
import { SessionSecondFactors } from '../devices/session-factors';
import { ProblemError } from '../../http/problem';
import type { IdentityService } from '../service';
import { WebAuthnCeremonies } from '../webauthn/ceremonies';
import { WebAuthnCredentials } from '../webauthn/credentials';
import { SignInHistory } from './history';
import type { SignInSettings } from './settings';

/** Stores and settings of WebAuthn, trusted devices and risk scoring for one appliance. */
export interface SignInGuards {
  settings: SignInSettings;
  credentials: WebAuthnCredentials;
  ceremonies: WebAuthnCeremonies;
  devices: DeviceStore;
  sessionFactors: SessionSecondFactors;
  history: SignInHistory;
}

const guardsByIdentity = new WeakMap<IdentityService, SignInGuards>();

/**
 * Attaches WebAuthn, device and risk stores to an identity service. The
 * appliance runtime always calls it. An IdentityService without it (the vault
 * benchmark) signs in with password and TOTP only, and its WebAuthn and device
 * routes return 503.
 */
export function configureSignIn(
  identity: IdentityService,
  database: Database,
  settings: SignInSettings,
): SignInGuards {
  const guards: SignInGuards = {
    settings,
    credentials: new WebAuthnCredentials(database),
    ceremonies: new WebAuthnCeremonies(database),
    devices: new DeviceStore(database, settings.deviceTrustDays),
    sessionFactors: new SessionSecondFactors(database),
    history: new SignInHistory(database),
  };
  guardsByIdentity.set(identity, guards);
  return guards;
}

export function signInGuardsOf(identity: IdentityService): SignInGuards | undefined {
  return guardsByIdentity.get(identity);
}

/** Returns the guards, or throws a 503 problem when the appliance was started without them. */
export function requireSignInGuards(identity: IdentityService): SignInGuards {
  const guards = guardsByIdentity.get(identity);
  if (!guards)
    throw new ProblemError(
      503,
      'sign_in_features_unavailable',
      'Security keys and devices unavailable',
      'This appliance process was started without WebAuthn and device support; start it with appliancectl start.',
    );
  return guards;
}
