import type { Transaction } from 'sequelize';

import type { RouteContext } from '../http/route';
import { deviceCookieDays, deviceCookieName } from './devices/devices';
import type { SecondFactorMethod } from './devices/session-factors';
import { LoginThrottledError } from './login-throttle';
import { signInGuardsOf } from './risk/sign-in-guards';
import type { IdentityService } from './service';
import { sessionCookieName } from './sessions';
import type { User } from './users';

type AnyContext = RouteContext<unknown, unknown, unknown>;

/** Cookie attributes the `__Host-` prefix requires, plus HttpOnly and SameSite=Strict. */
export const hostCookieOptions = {
  httpOnly: true,
  secure: true,
  sameSite: 'strict',
  path: '/',
} as const;

/** Throws the throttle's 429 with a Retry-After header when the account or address is over its limit. */
export async function assertLoginAllowed(
  identity: IdentityService,
  context: AnyContext,
  username: string,
): Promise<void> {
  try {
    await identity.throttle.assertAllowed(username, context.sourceIp);
  } catch (error) {
    if (error instanceof LoginThrottledError)
      context.response.set('Retry-After', String(error.retryAfterSeconds));
    throw error;
  }
}

/**
 * Opens a full session for `user` (audited by the request's commit) and sets
 * the session cookie. `user` may be a function that creates or updates the
 * account inside the same write (just-in-time provisioning). In the same
 * commit it records the sign-in in the risk history, the browser's device
 * (issuing a device cookie to a new browser) and `secondFactor`, the method
 * the sign-in passed, if any. Returns the user.
 */
export async function startSession(
  identity: IdentityService,
  context: AnyContext,
  userOrProvision: User | ((transaction: Transaction) => Promise<User>),
  extraWrites?: Parameters<AnyContext['commit']>[0],
  secondFactor?: SecondFactorMethod,
): Promise<User> {
  const guards = signInGuardsOf(identity);
  const deviceCookie = context.request.cookies?.[deviceCookieName] as string | undefined;

  // A fresh token every time; a session cookie the browser held before this
  // login is closed, never carried into the new session (fixation).
  const previousToken = context.request.cookies?.[sessionCookieName] as string | undefined;
  const { user, session, newDeviceCookie } = await context.commit(async (transaction) => {
    const user =
      typeof userOrProvision === 'function' ? await userOrProvision(transaction) : userOrProvision;
    context.principal = {
      userId: user.id,
      username: user.username,
      role: user.role,
      mustChangePassword: user.mustChangePassword,
    };
    await extraWrites?.(transaction);
    if (previousToken && previousToken.length <= 128)
      await identity.sessions.close(previousToken, transaction);
    const session = await identity.sessions.open(
      user.id,
      { sourceIp: context.sourceIp, userAgent: context.userAgent },
      transaction,
    );
    if (!guards) return { user, session, newDeviceCookie: undefined };

    const client = { sourceIp: context.sourceIp, userAgent: context.userAgent };
    const device = await guards.devices.recordSignIn(deviceCookie, user.id, client, transaction);
    await guards.history.record(
      { userId: user.id, sourceIp: context.sourceIp, succeeded: true },
      guards.settings.risk,
      transaction,
    );
    if (secondFactor)
      await guards.sessionFactors.record(session.token, user.id, secondFactor, transaction);
    return { user, session, newDeviceCookie: device.newCookie };
  });
  await identity.throttle.recordSuccess(user.username);

  context.response.cookie(sessionCookieName, session.token, {
    ...hostCookieOptions,
    expires: session.expiresAt,
  });
  if (newDeviceCookie)
    context.response.cookie(deviceCookieName, newDeviceCookie, {
      ...hostCookieOptions,
      maxAge: deviceCookieDays * 86_400_000,
    });
  return user;
}

/** Returns the public fields of a user, without the password hash. */
export function presentUser(user: {
  id: string;
  username: string;
  role: string;
  mustChangePassword: boolean;
  createdAt?: string;
}) {
  return {
    id: user.id,
    username: user.username,
    role: user.role,
    mustChangePassword: user.mustChangePassword,
    createdAt: user.createdAt,
  };
}
