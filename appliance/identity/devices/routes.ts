import { z } from 'zod';

import { problems } from '../../http/problem';
import { route, type RouteSpec } from '../../http/route';
import { requireSignInGuards } from '../risk/sign-in-guards';
import type { IdentityService } from '../service';
import { deviceCookieName } from './devices';

const deviceId = z.object({ id: z.uuid() });

/** Builds the routes that list, trust and revoke the signed-in user's own devices. */
export function deviceRoutes(identity: IdentityService): RouteSpec[] {
  return [
    route({
      method: 'get',
      path: '/auth/devices',
      action: 'auth.device.list',
      resource: 'device',
      access: 'signed-in',
      async handler(context) {
        const guards = requireSignInGuards(identity);
        const userId = context.principal!.userId;
        const cookie = context.request.cookies?.[deviceCookieName] as string | undefined;
        const current = await guards.devices.identify(cookie, userId);
        const devices = await guards.devices.list(userId);
        return {
          body: {
            items: devices.map((device) => ({ ...device, current: device.id === current?.id })),
          },
        };
      },
    }),

    route({
      method: 'post',
      path: '/auth/devices/:id/trust',
      action: 'auth.device.trust',
      resource: 'device',
      access: 'signed-in',
      params: deviceId,
      async handler(context) {
        const guards = requireSignInGuards(identity);
        const principal = context.principal!;
        // Trust lets this device skip the second factor later, so only a session that passed one may grant it.
        const method = await guards.sessionFactors.methodOf(principal.sessionToken);
        if (!method)
          throw problems.forbidden(
            'Marking a device trusted needs a session that passed a second factor; sign in with TOTP or a security key, or step up with POST /api/v1/auth/mfa/webauthn/step-up/options.',
          );

        const trusted = await context.commit(async (transaction) => {
          context.auditNote = `second_factor=${method}`;
          return guards.devices.trust(principal.userId, context.params.id, transaction);
        });
        if (!trusted) throw problems.notFound(`Device ${context.params.id}`);
        return { body: { id: context.params.id, trusted: true } };
      },
    }),

    route({
      method: 'delete',
      path: '/auth/devices/:id',
      action: 'auth.device.revoke',
      resource: 'device',
      access: 'signed-in',
      params: deviceId,
      async handler(context) {
        const guards = requireSignInGuards(identity);
        const userId = context.principal!.userId;
        const revoked = await context.commit((transaction) =>
          guards.devices.revoke(userId, context.params.id, transaction),
        );
        if (!revoked) throw problems.notFound(`Device ${context.params.id}`);
      },
    }),
  ];
}
