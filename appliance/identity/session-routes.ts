import { z } from 'zod';

import { problems } from '../http/problem';
import { route, type RouteSpec } from '../http/route';
import { hostCookieOptions } from './login-steps';
import type { IdentityService } from './service';
import { sessionCookieName } from './sessions';

const sessionId = z.object({ id: z.uuid() });

/** Builds the routes that list a signed-in user's own sessions and end one, for example a lost laptop's. */
export function sessionRoutes(identity: IdentityService): RouteSpec[] {
  return [
    route({
      method: 'get',
      path: '/auth/sessions',
      action: 'auth.session.list',
      resource: 'session',
      access: 'signed-in',
      async handler(context) {
        const principal = context.principal!;
        const items = await identity.sessions.list(principal.userId, principal.sessionToken);
        return { body: { items } };
      },
    }),

    route({
      method: 'delete',
      path: '/auth/sessions/:id',
      action: 'auth.session.revoke',
      resource: 'session',
      access: 'signed-in',
      params: sessionId,
      async handler(context) {
        const principal = context.principal!;
        const own = await identity.sessions.list(principal.userId, principal.sessionToken);
        const isCurrent = own.some(
          (session) => session.current && session.id === context.params.id,
        );

        const closed = await context.commit((transaction) =>
          identity.sessions.closeOwn(principal.userId, context.params.id, transaction),
        );
        if (!closed)
          throw problems.notFoundDetail(
            `Your account has no session ${context.params.id}; list yours with GET /api/v1/auth/sessions.`,
          );
        if (isCurrent) context.response.clearCookie(sessionCookieName, hostCookieOptions);
      },
    }),
  ];
}
