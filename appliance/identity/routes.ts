import { z } from 'zod';

import { problems } from '../http/problem';
import { route, type RouteSpec } from '../http/route';
import type { IdentityService } from './service';
import { roles } from './permissions';
import { chosenPassword } from './password-policy';
import { assertLoginAllowed, hostCookieOptions, presentUser, startSession } from './login-steps';
import { mfaRoutes, startMfaChallenge } from './mfa-routes';
import { sessionCookieName } from './sessions';
import { sessionRoutes } from './session-routes';
import { apiKeyRoutes } from './api-key-routes';

const credentials = z.object({
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(1024),
});

const newPassword = chosenPassword;

const userId = z.object({ id: z.uuid() });

const userChange = z
  .object({ role: z.enum(roles).optional(), disabled: z.boolean().optional() })
  .strict()
  .refine((change) => change.role !== undefined || change.disabled !== undefined, {
    message: 'send role, disabled or both',
  });

/** Sign-in, sign-out, password change and user administration. */
export function identityRoutes(identity: IdentityService): RouteSpec[] {
  return [
    ...mfaRoutes(identity),
    ...sessionRoutes(identity),
    ...apiKeyRoutes(identity),

    route({
      method: 'post',
      path: '/auth/login',
      action: 'auth.login',
      resource: 'session',
      access: 'public',
      body: credentials,
      async handler(context) {
        const { username, password } = context.body;
        context.actorUsername = username.slice(0, 64);
        await assertLoginAllowed(identity, context, username);

        const user = await identity.verifyCredentials(username, password);
        if (!user) {
          await identity.throttle.recordFailure(username, context.sourceIp);
          throw problems.invalidCredentials();
        }

        if (await identity.totp.isActive(user.id)) {
          return { body: await startMfaChallenge(identity, context, user) };
        }

        await startSession(identity, context, user);
        return { body: { user: presentUser(user) } };
      },
    }),

    route({
      method: 'post',
      path: '/auth/logout',
      action: 'auth.logout',
      resource: 'session',
      access: 'signed-in',
      allowPendingPasswordChange: true,
      async handler(context) {
        const token = context.principal?.sessionToken;
        if (token)
          await context.commit((transaction) => identity.sessions.close(token, transaction));
        context.response.clearCookie(sessionCookieName, hostCookieOptions);
      },
    }),

    route({
      method: 'get',
      path: '/auth/me',
      action: 'auth.session.read',
      resource: 'session',
      access: 'signed-in',
      allowPendingPasswordChange: true,
      async handler(context) {
        const user = await identity.users.findById(context.principal!.userId);
        if (!user) throw problems.unauthenticated();
        return {
          body: { user: presentUser(user), mfa: { totp: await identity.totp.isActive(user.id) } },
        };
      },
    }),

    route({
      method: 'post',
      path: '/auth/password',
      action: 'auth.password.change',
      resource: 'user',
      access: 'signed-in',
      allowPendingPasswordChange: true,
      body: z.object({ currentPassword: z.string().min(1).max(1024), newPassword }),
      async handler(context) {
        const principal = context.principal!;
        context.resourceId = principal.userId;
        await identity.changePassword(
          principal,
          context.body.currentPassword,
          context.body.newPassword,
          context.commit,
        );
      },
    }),

    route({
      method: 'get',
      path: '/users',
      action: 'identity.user.list',
      resource: 'user',
      access: 'users:read',
      async handler() {
        const users = await identity.users.list();
        return { body: { items: users.map(presentUser) } };
      },
    }),

    route({
      method: 'post',
      path: '/users',
      action: 'identity.user.create',
      resource: 'user',
      access: 'users:create',
      body: z.object({
        username: z
          .string()
          .min(1)
          .max(64)
          .regex(/^[\p{L}\p{N}._@-]+$/u, 'may contain letters, digits and . _ @ - only'),
        password: newPassword,
        role: z.enum(roles),
      }),
      async handler(context) {
        // The id is set inside the commit, so the audit record written with it names the new user.
        const user = await context.commit(async (transaction) => {
          const created = await identity.users.create(
            { ...context.body, mustChangePassword: true },
            transaction,
          );
          context.resourceId = created.id;
          return created;
        });
        return { status: 201, body: presentUser(user) };
      },
    }),

    route({
      method: 'get',
      path: '/users/:id',
      action: 'identity.user.read',
      resource: 'user',
      access: 'users:read',
      params: userId,
      async handler(context) {
        const user = await identity.users.findById(context.params.id);
        if (!user) throw problems.notFound(`User ${context.params.id}`);
        return { body: presentUser(user) };
      },
    }),

    route({
      method: 'patch',
      path: '/users/:id',
      action: 'identity.user.update',
      resource: 'user',
      access: 'users:update',
      params: userId,
      body: userChange,
      async handler(context) {
        // An admin cannot demote or disable themselves, so the appliance keeps an admin who can undo it.
        if (context.params.id === context.principal!.userId)
          throw problems.conflict(
            'You cannot change your own role or disable your own account; ask another admin.',
          );

        const { before, after } = await context.commit(async (transaction) => {
          const result = await identity.updateUser(context.params.id, context.body, transaction);
          context.auditNote = `role ${result.before.role}->${result.after.role}; disabled ${result.before.disabled}->${result.after.disabled}`;
          return result;
        });
        return {
          body: { ...presentUser(after), disabled: after.disabled, previousRole: before.role },
        };
      },
    }),
  ];
}
