import { ProblemError } from '../../http/problem';
import type { RouteContext } from '../../http/route';
import { logger } from '../../platform/logger';
import { deviceCookieName } from '../devices/devices';
import type { IdentityService } from '../service';
import type { User } from '../users';
import { scoreSignIn } from './score';
import { signInGuardsOf } from './sign-in-guards';

/** Next step of a sign-in after a correct password. */
export interface SignInDecision {
  secondFactorRequired: boolean;
}

/**
 * Scores a password-verified sign-in and decides its next step:
 *
 * - high: denied with a 403 problem (`sign_in_risk_high`);
 * - medium: a user with TOTP or a security key must pass it even on a trusted
 *   device. A user with neither signs in, and the audit note records
 *   `step_up=unavailable` so that the SOC can review the gap. Refusing instead
 *   would lock out a user who has no way to enrol a second factor first;
 * - low: a user with a second factor skips it only on a trusted device.
 *
 * The score and its reasons go in the login's audit note, never in the response.
 */
export async function decideSignIn(
  identity: IdentityService,
  context: RouteContext<unknown, unknown, unknown>,
  user: User,
  now = new Date(),
): Promise<SignInDecision> {
  const hasTotp = await identity.totp.isActive(user.id);
  const guards = signInGuardsOf(identity);
  if (!guards) return { secondFactorRequired: hasTotp };

  const hasSecondFactor = hasTotp || (await guards.credentials.countFor(user.id)) > 0;
  const cookie = context.request.cookies?.[deviceCookieName] as string | undefined;
  const device = await guards.devices.identify(cookie, user.id);
  const trusted = await guards.devices.isTrusted(device, now);
  const baseline = await guards.history.baselineOf(user.id, now, guards.settings.risk);
  const assessment = scoreSignIn(
    { knownDevice: Boolean(device), sourceIp: context.sourceIp, now, ...baseline },
    guards.settings.risk,
  );

  const note = [
    `risk=${assessment.score}`,
    `band=${assessment.band}`,
    `reasons=${assessment.reasons.join(',') || 'none'}`,
  ];
  if (trusted) note.push('trusted_device');
  context.auditNote = note.join(' ');

  if (assessment.band === 'high')
    throw new ProblemError(
      403,
      'sign_in_risk_high',
      'Sign-in denied',
      'This sign-in differs too much from the usual ones for this account (device, network, time of day or failed passwords), so it was denied. Sign in from a device and network you used before, or ask an admin to review the audit trail.',
    );

  if (assessment.band === 'medium') {
    context.auditNote += hasSecondFactor ? ' step_up=mfa' : ' step_up=unavailable';
    return { secondFactorRequired: hasSecondFactor };
  }
  return { secondFactorRequired: hasSecondFactor && !trusted };
}

/**
 * Records a wrong password for an existing account in the sign-in history.
 * It runs outside the request's commit, which rolls back on the 401, and a
 * failed write is logged, not raised, because the sign-in is rejected anyway.
 */
export async function recordPasswordFailure(
  identity: IdentityService,
  sourceIp: string,
  username: string,
): Promise<void> {
  const guards = signInGuardsOf(identity);
  const found = guards ? await identity.users.findWithHash(username) : undefined;
  if (!guards || !found) return;

  try {
    await guards.history.record(
      { userId: found.user.id, sourceIp, succeeded: false },
      guards.settings.risk,
    );
  } catch (error) {
    logger.error({ err: error, userId: found.user.id }, 'failed sign-in could not be recorded');
  }
}
