import { QueryTypes, type Transaction } from 'sequelize';
import { z } from 'zod';

import { ProblemError, problems } from '../../http/problem';
import { route, type RouteSpec } from '../../http/route';
import type { Database } from '../../platform/database';
import { assertLoginAllowed } from '../login-steps';
import type { IdentityService } from '../service';

const userId = z.object({ id: z.uuid() });

const totpDisable = z.object({
  code: z.string().regex(/^\d{6}$/, 'must be the 6-digit code from the authenticator app'),
});

/** Table of WebAuthn credentials, when a migration has created it; the reset removes its rows too. */
const webAuthnTable = 'webauthn_credentials';

/** Second-factor removal: an admin's reset of another user, and a user turning their own TOTP off. */
export function mfaResetRoutes(identity: IdentityService, database: Database): RouteSpec[] {
  return [
    route({
      method: 'delete',
      path: '/users/:id/mfa',
      action: 'identity.user.mfa.reset',
      resource: 'user',
      access: 'users:update',
      params: userId,
      async handler(context) {
        const id = context.params.id;
        // Own factors go through DELETE /auth/mfa/totp, which needs a current code, so a
        // stolen admin session alone cannot strip the admin's second factor.
        if (id === context.principal!.userId)
          throw problems.conflict(
            'You cannot reset your own second factors; turn TOTP off with DELETE /api/v1/auth/mfa/totp and a current code, or ask another admin.',
          );

        const removed = await context.commit(async (transaction) => {
          const user = await identity.users.findById(id, transaction);
          if (!user) throw problems.notFound(`User ${id}`);

          const counts = {
            totp: await identity.totp.remove(id, transaction),
            recoveryCodes: await identity.recoveryCodes.removeAll(id, transaction),
            webAuthnCredentials: await removeWebAuthnCredentials(database, id, transaction),
          };
          await database.sequelize.query('DELETE FROM mfa_challenges WHERE user_id = :id', {
            transaction,
            replacements: { id },
          });
          await identity.sessions.closeAllFor(id, transaction);
          context.auditNote = `totp ${counts.totp}->0; recovery_codes ${counts.recoveryCodes}->0; webauthn ${counts.webAuthnCredentials}->0; sessions closed`;
          return counts;
        });
        return { body: { removed } };
      },
    }),

    route({
      method: 'delete',
      path: '/auth/mfa/totp',
      action: 'auth.mfa.totp.disable',
      resource: 'user',
      access: 'signed-in',
      body: totpDisable,
      async handler(context) {
        const principal = context.principal!;
        context.resourceId = principal.userId;
        // Wrong codes count as failed sign-ins, so a stolen session cannot try all of them.
        await assertLoginAllowed(identity, context, principal.username);
        if (!(await identity.totp.isActive(principal.userId)))
          throw problems.conflict(
            'TOTP is not active for this account; there is nothing to turn off.',
          );

        const wrongCode = new ProblemError(
          400,
          'invalid_request',
          'Invalid request',
          'code: does not match the authenticator app or was already used; enter the current code.',
          [{ field: 'code', message: 'does not match the authenticator app or was already used' }],
        );
        try {
          await context.commit(async (transaction) => {
            const valid = await identity.totp.verifyCode(
              principal.userId,
              context.body.code,
              transaction,
              { pending: false },
            );
            if (!valid) throw wrongCode;

            const recoveryCodes = await identity.recoveryCodes.removeAll(
              principal.userId,
              transaction,
            );
            await identity.totp.remove(principal.userId, transaction);
            context.auditNote = `totp 1->0; recovery_codes ${recoveryCodes}->0`;
          });
        } catch (error) {
          if (error === wrongCode)
            await identity.throttle.recordFailure(principal.username, context.sourceIp);
          throw error;
        }
      },
    }),
  ];
}

/** Deletes the user's WebAuthn credentials and returns how many were deleted; 0 when the table does not exist. */
async function removeWebAuthnCredentials(
  database: Database,
  userId: string,
  transaction: Transaction,
): Promise<number> {
  const tables = await database.sequelize.query<{ name: string }>(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = :table",
    { type: QueryTypes.SELECT, transaction, replacements: { table: webAuthnTable } },
  );
  if (!tables.length) return 0;

  // The WebAuthn migration (202612040A01) keys credentials by user_id, like the other factor tables.
  const [row] = await database.sequelize.query<{ n: number }>(
    `SELECT COUNT(*) AS n FROM ${webAuthnTable} WHERE user_id = :userId`,
    { type: QueryTypes.SELECT, transaction, replacements: { userId } },
  );
  await database.sequelize.query(`DELETE FROM ${webAuthnTable} WHERE user_id = :userId`, {
    transaction,
    replacements: { userId },
  });
  return row.n;
}
