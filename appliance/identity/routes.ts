import { z } from 'zod';

import { problems } from '../http/problem';
import { route, type RouteSpec } from '../http/route';
import type { IdentityService } from './service';
import { roles } from './permissions';
import { minimumPasswordLength } from './passwords';
import { sessionCookieName } from './sessions';

const credentials = z.object({
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(1024),
});

const newPassword = z
  .string()
  .min(minimumPasswordLength, `must be at least ${minimumPasswordLength} characters`)
  .max(1024);

const userId = z.object({ id: z.uuid() });

/** Sign-in, sign-out, password change and user administration. */
export function identityRoutes(identity: IdentityService): RouteSpec[] {
  return [
    route({
      method: 'post',
      path: '/auth/login',
      action: 'auth.login',
      resource: 'session',
      access: 'public',
      body: credentials,
      async handler(context) {
        context.actorUsername = context.body.username.slice(0, 64);
        const user = await identity.verifyCredentials(context.body.username, context.body.password);
        if (!user) throw problems.invalidCredentials();

        context.principal = {
          userId: user.id,
          username: user.username,
          role: user.role,
          mustChangePassword: user.mustChangePassword,
        };
        const session = await context.commit((transaction) =>
          identity.sessions.open(
            user.id,
            { sourceIp: context.sourceIp, userAgent: context.userAgent },
            transaction,
          ),
        );

        context.response.cookie(sessionCookieName, session.token, {
          httpOnly: true,
          secure: true,
          sameSite: 'strict',
          path: '/',
          expires: session.expiresAt,
        });
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
        context.response.clearCookie(sessionCookieName, {
          httpOnly: true,
          secure: true,
          sameSite: 'strict',
          path: '/',
        });
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
        return { body: { user: presentUser(user) } };
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
  ];
}

function presentUser(user: {
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
