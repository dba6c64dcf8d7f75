import type { RouteContext } from '../http/route';
import { LoginThrottledError } from './login-throttle';
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

/** Opens a full session for `user` (audited by the request's commit) and sets the session cookie. */
export async function startSession(
  identity: IdentityService,
  context: AnyContext,
  user: User,
  extraWrites?: Parameters<AnyContext['commit']>[0],
): Promise<void> {
  context.principal = {
    userId: user.id,
    username: user.username,
    role: user.role,
    mustChangePassword: user.mustChangePassword,
  };
  // A fresh token every time; a session cookie the browser held before this
  // login is closed, never carried into the new session (fixation).
  const previousToken = context.request.cookies?.[sessionCookieName] as string | undefined;
  const session = await context.commit(async (transaction) => {
    await extraWrites?.(transaction);
    if (previousToken && previousToken.length <= 128)
      await identity.sessions.close(previousToken, transaction);
    return identity.sessions.open(
      user.id,
      { sourceIp: context.sourceIp, userAgent: context.userAgent },
      transaction,
    );
  });
  await identity.throttle.recordSuccess(user.username);

  context.response.cookie(sessionCookieName, session.token, {
    ...hostCookieOptions,
    expires: session.expiresAt,
  });
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
