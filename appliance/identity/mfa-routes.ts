import { z } from 'zod';

import { ProblemError, problems } from '../http/problem';
import { route, type RouteContext, type RouteSpec } from '../http/route';
import { assertLoginAllowed, hostCookieOptions, presentUser, startSession } from './login-steps';
import { mfaChallengeCookieName } from './mfa-challenges';
import type { IdentityService } from './service';
import type { User } from './users';

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
 * Opens the pending state of a password-verified sign-in for a user with TOTP
 * active: no session yet, only a short-lived challenge cookie for
 * POST /auth/mfa/verify.
 */
export async function startMfaChallenge(
  identity: IdentityService,
  context: RouteContext<unknown, unknown, unknown>,
  user: User,
): Promise<{ mfaRequired: true; methods: string[]; expiresAt: string }> {
  context.resourceId = user.id;
  const challenge = await context.commit((transaction) =>
    identity.mfaChallenges.open(user.id, transaction),
  );
  context.response.cookie(mfaChallengeCookieName, challenge.token, {
    ...hostCookieOptions,
    expires: challenge.expiresAt,
  });
  return {
    mfaRequired: true,
    methods: ['totp', 'recovery_code'],
    expiresAt: challenge.expiresAt.toISOString(),
  };
}

/** TOTP enrolment and the second sign-in step. */
export function mfaRoutes(identity: IdentityService): RouteSpec[] {
  return [
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
        await assertLoginAllowed(identity, context, user.username);

        const { code, recoveryCode } = context.body;
        try {
          await startSession(identity, context, user, async (transaction) => {
            const accepted = code
              ? await identity.totp.verifyCode(user.id, code, transaction, { pending: false })
              : await identity.recoveryCodes.redeem(user.id, recoveryCode!, transaction);
            if (!accepted) throw invalidSecondFactor();
            await identity.mfaChallenges.close(token, transaction);
          });
        } catch (error) {
          if (error instanceof ProblemError && error.code === 'invalid_mfa_code') {
            context.principal = undefined;
            await identity.mfaChallenges.recordFailure(token);
            await identity.throttle.recordFailure(user.username, context.sourceIp);
          }
          throw error;
        }

        context.response.clearCookie(mfaChallengeCookieName, hostCookieOptions);
        return { body: { user: presentUser(user) } };
      },
    }),
  ];
}
