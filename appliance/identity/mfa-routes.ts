import type { Transaction } from 'sequelize';
import { z } from 'zod';

import { ProblemError, problems } from '../http/problem';
import { route, type RouteContext, type RouteSpec } from '../http/route';
import { assertLoginAllowed, hostCookieOptions, presentUser, startSession } from './login-steps';
import { deviceRoutes } from './devices/routes';
import type { SecondFactorMethod } from './devices/session-factors';
import { mfaChallengeCookieName } from './mfa-challenges';
import { signInGuardsOf } from './risk/sign-in-guards';
import type { IdentityService } from './service';
import type { User } from './users';
import { webauthnRoutes } from './webauthn/routes';

const totpCode = z.string().regex(/^\d{6}$/, 'must be the 6-digit code from the authenticator app');

const verifyBody = z
  .object({
    code: totpCode.optional(),
    recoveryCode: z.string().min(1).max(64).optional(),
  })
  .refine((body) => (body.code === undefined) !== (body.recoveryCode === undefined), {
    message: 'send exactly one of code or recoveryCode',
    path: ['code'],
  });

const invalidSecondFactor = () =>
  new ProblemError(
    401,
    'invalid_mfa_code',
    'Invalid second factor',
    'The code or recovery code is incorrect, expired or already used; enter a new code.',
  );

/**
 * Opens the pending state of a password-verified sign-in for a user with a
 * second factor: no session yet, only a short-lived challenge cookie for
 * POST /auth/mfa/verify or POST /auth/mfa/webauthn/verify.
 */
export async function startMfaChallenge(
  identity: IdentityService,
  context: RouteContext<unknown, unknown, unknown>,
  userOrProvision: User | ((transaction: Transaction) => Promise<User>),
): Promise<{ mfaRequired: true; methods: string[]; expiresAt: string }> {
  // A directory sign-in provisions the account in the same write as the challenge.
  const { user, challenge } = await context.commit(async (transaction) => {
    const user =
      typeof userOrProvision === 'function' ? await userOrProvision(transaction) : userOrProvision;
    context.resourceId = user.id;
    return { user, challenge: await identity.mfaChallenges.open(user.id, transaction) };
  });
  const methods = await secondFactorMethods(identity, user.id);

  context.response.cookie(mfaChallengeCookieName, challenge.token, {
    ...hostCookieOptions,
    expires: challenge.expiresAt,
  });
  return { mfaRequired: true, methods, expiresAt: challenge.expiresAt.toISOString() };
}

/** Lists the second factors a user can sign in with; empty when they have none. */
export async function secondFactorMethods(
  identity: IdentityService,
  userId: string,
): Promise<string[]> {
  const methods = (await identity.totp.isActive(userId)) ? ['totp', 'recovery_code'] : [];
  const guards = signInGuardsOf(identity);
  if (guards && (await guards.credentials.countFor(userId)) > 0) methods.push('webauthn');
  return methods;
}

/** Returns the live MFA challenge token of the request and its user, or throws a 401 problem. */
export async function resolveMfaChallenge(
  identity: IdentityService,
  context: RouteContext<unknown, unknown, unknown>,
): Promise<{ token: string; user: User }> {
  const token = context.request.cookies?.[mfaChallengeCookieName] as string | undefined;
  const userId =
    token && token.length <= 128 ? await identity.mfaChallenges.resolve(token) : undefined;
  const user = userId ? await identity.users.findById(userId) : undefined;
  if (!token || !user || user.disabled)
    throw problems.unauthenticated(
      'No sign-in is waiting for a second factor, or it expired; sign in with username and password first.',
    );

  context.actorUsername = user.username;
  context.resourceId = user.id;
  return { token, user };
}

/**
 * Completes a pending sign-in: `acceptFactor` runs inside the session's commit
 * and throws a 401 problem with code `rejectionCode` for a wrong factor. A
 * rejection counts against the challenge and the login throttle.
 */
export async function completeMfaChallenge(
  identity: IdentityService,
  context: RouteContext<unknown, unknown, unknown>,
  pending: { token: string; user: User },
  method: SecondFactorMethod,
  acceptFactor: (transaction: Transaction) => Promise<void>,
  rejectionCode: string,
): Promise<{ user: ReturnType<typeof presentUser> }> {
  const { token, user } = pending;
  try {
    await startSession(
      identity,
      context,
      user,
      async (transaction) => {
        await acceptFactor(transaction);
        await identity.mfaChallenges.close(token, transaction);
      },
      method,
    );
  } catch (error) {
    if (error instanceof ProblemError && error.code === rejectionCode) {
      context.principal = undefined;
      await identity.mfaChallenges.recordFailure(token);
      await identity.throttle.recordFailure(user.username, context.sourceIp);
    }
    throw error;
  }

  context.response.clearCookie(mfaChallengeCookieName, hostCookieOptions);
  return { user: presentUser(user) };
}

/** Builds the routes for TOTP enrolment, the second sign-in step, security keys and devices. */
export function mfaRoutes(identity: IdentityService): RouteSpec[] {
  return [
    ...webauthnRoutes(identity),
    ...deviceRoutes(identity),

    route({
      method: 'post',
      path: '/auth/mfa/totp/enroll',
      action: 'auth.mfa.enroll',
      resource: 'user',
      access: 'signed-in',
      async handler(context) {
        const principal = context.principal!;
        context.resourceId = principal.userId;
        const enrolment = await context.commit((transaction) =>
          identity.totp.enrol({ id: principal.userId, username: principal.username }, transaction),
        );
        return { status: 201, body: enrolment };
      },
    }),

    route({
      method: 'post',
      path: '/auth/mfa/totp/confirm',
      action: 'auth.mfa.confirm',
      resource: 'user',
      access: 'signed-in',
      body: z.object({ code: totpCode }),
      async handler(context) {
        const principal = context.principal!;
        context.resourceId = principal.userId;

        // A wrong code throws inside the commit, so neither the activation nor the codes are kept.
        const recoveryCodes = await context.commit(async (transaction) => {
          const matches = await identity.totp.verifyCode(
            principal.userId,
            context.body.code,
            transaction,
            { pending: true },
          );
          if (!matches)
            throw problems.invalidRequest(
              'code: does not match a pending enrolment; enrol first, then enter the current code from the app',
              [{ field: 'code', message: 'does not match the pending enrolment' }],
            );
          // The session just proved the authenticator, so it counts as one that passed a second factor.
          if (principal.sessionToken)
            await signInGuardsOf(identity)?.sessionFactors.record(
              principal.sessionToken,
              principal.userId,
              'totp',
              transaction,
            );
          return identity.recoveryCodes.issue(principal.userId, transaction);
        });
        return { body: { totp: 'active', recoveryCodes } };
      },
    }),

    route({
      method: 'post',
      path: '/auth/mfa/verify',
      action: 'auth.mfa.verify',
      resource: 'session',
      access: 'public',
      body: verifyBody,
      async handler(context) {
        const pending = await resolveMfaChallenge(identity, context);
        await assertLoginAllowed(identity, context, pending.user.username);

        const { code, recoveryCode } = context.body;
        const body = await completeMfaChallenge(
          identity,
          context,
          pending,
          code ? 'totp' : 'recovery_code',
          async (transaction) => {
            const accepted = code
              ? await identity.totp.verifyCode(pending.user.id, code, transaction, {
                  pending: false,
                })
              : await identity.recoveryCodes.redeem(pending.user.id, recoveryCode!, transaction);
            if (!accepted) throw invalidSecondFactor();
          },
          'invalid_mfa_code',
        );
        return { body };
      },
    }),
  ];
}
