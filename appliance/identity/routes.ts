import { z } from 'zod';

import { problems } from '../http/problem';
import { route, type RouteSpec } from '../http/route';
import type { IdentityService } from './service';
import type { AccessChanges } from './access/changes';
import type { User } from './users';
import { roles } from './permissions';
import { chosenPassword } from './password-policy';
import { assertLoginAllowed, hostCookieOptions, presentUser, startSession } from './login-steps';
import { mfaRoutes, startMfaChallenge } from './mfa-routes';
import { decideSignIn, recordPasswordFailure } from './risk/decide';
import { sessionCookieName } from './sessions';
import { sessionRoutes } from './session-routes';
import { apiKeyRoutes } from './api-key-routes';

const credentials = z.object({
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(1024),
});

const newPassword = chosenPassword;

const userId = z.object({ id: z.uuid() });

/** An address for account recovery mail; compared and stored NFKC-normalised and lower case. */
const emailAddress = z.email('must be an email address such as name@example.org').max(254);

const userChange = z
  .object({
    role: z.enum(roles).optional(),
    disabled: z.boolean().optional(),
    email: emailAddress.nullable().optional(),
  })
  .strict()
  .refine(
    (change) =>
      change.role !== undefined || change.disabled !== undefined || change.email !== undefined,
    { message: 'send at least one of role, disabled or email (null removes the address)' },
  );

/** Returns the public fields of a user for the user administration routes: those of presentUser plus the email address. */
function presentManagedUser(user: User) {
  return { ...presentUser(user), email: user.email };
}

/** Sign-in, sign-out, password change and user administration. */
export function identityRoutes(
  identity: IdentityService,
  options: { accessChanges?: AccessChanges } = {},
): RouteSpec[] {
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
          await recordPasswordFailure(identity, context.sourceIp, username);
          throw problems.invalidCredentials();
        }

        // Adaptive risk: denies (403), requires the second factor or lets the password suffice.
        const decision = await decideSignIn(identity, context, user);
        if (decision.secondFactorRequired) {
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
        return { body: { items: users.map(presentManagedUser) } };
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
        email: emailAddress.optional(),
      }),
      async handler(context) {
        // With a second approver required, one admin must not mint another admin
        // alone: a new account starts below admin and is promoted by approval.
        // A sole admin may create the second, because no other admin exists to approve it.
        const changes = options.accessChanges;
        if (
          context.body.role === 'admin' &&
          changes?.approvalRequired &&
          (await changes.otherAdmins(context.principal!.userId)) > 0
        )
          throw problems.invalidRequest(
            'role: create the account with another role, then change it to admin with PATCH /api/v1/users/:id; a second admin approves that change',
            [
              {
                field: 'role',
                message:
                  'admin needs a second approver: create the account with another role, then ask for the change with PATCH /api/v1/users/:id',
              },
            ],
          );

        // The id is set inside the commit, so the audit record written with it names the new user.
        const user = await context.commit(async (transaction) => {
          const created = await identity.users.create(
            { ...context.body, mustChangePassword: true },
            transaction,
          );
          context.resourceId = created.id;
          return created;
        });
        return { status: 201, body: presentManagedUser(user) };
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
        return { body: presentManagedUser(user) };
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
        const { role, disabled, email } = context.body;
        const changesAccess = role !== undefined || disabled !== undefined;

        // An admin cannot demote or disable themselves, so the appliance keeps an admin who can undo it.
        if (changesAccess && context.params.id === context.principal!.userId)
          throw problems.conflict(
            'You cannot change your own role or disable your own account; ask another admin.',
          );

        // With a second approver required, a role change waits as a change request.
        if (role !== undefined && options.accessChanges?.approvalRequired) {
          if (disabled !== undefined || email !== undefined)
            throw problems.invalidRequest(
              'role: send a role change on its own; it needs a second approver',
              [{ field: 'role', message: 'send it on its own; it needs a second approver' }],
            );
          return options.accessChanges.submit(context, 'user.role', {
            userId: context.params.id,
            role,
          });
        }

        const { before, after } = await context.commit(async (transaction) => {
          const notes: string[] = [];
          let result: { before: User; after: User } | undefined;
          if (changesAccess) {
            result = await identity.updateUser(context.params.id, { role, disabled }, transaction);
            notes.push(
              `role ${result.before.role}->${result.after.role}`,
              `disabled ${result.before.disabled}->${result.after.disabled}`,
            );
          }

          if (email !== undefined) {
            const previous =
              result?.before ?? (await identity.users.findById(context.params.id, transaction));
            if (!previous) throw problems.notFound(`User ${context.params.id}`);

            const updated = await identity.users.setEmail(context.params.id, email, transaction);
            // The note records whether an address was set, changed or removed, never the address.
            notes.push(`email ${emailChange(previous.email, updated.email)}`);
            result = { before: previous, after: updated };
          }

          context.auditNote = notes.join('; ');
          return result!;
        });
        return {
          body: {
            ...presentManagedUser(after),
            disabled: after.disabled,
            previousRole: before.role,
          },
        };
      },
    }),
  ];
}

function emailChange(before: string | null, after: string | null): string {
  if (before === after) return 'unchanged';
  if (before === null) return 'set';
  return after === null ? 'removed' : 'changed';
}
