import crypto from 'node:crypto';

import type { Response } from 'express';
import { z } from 'zod';

import { route, type RouteSpec } from '../../http/route';
import { OAuthError } from './errors';
import { clientCredentialsGrant, refreshTokenGrant, type TokenResponse } from './grant-types';
import { assertGrantable, grantName, permissionList } from './grants';
import type { OAuthService } from './service';
import { readTokenParameters, requiredParameter } from './token-request';

/** Path of the token endpoint below /api/v1; form bodies are parsed on this path only. */
export const tokenEndpointPath = '/oauth/token';

const newUserTokens = z.object({ name: grantName, permissions: permissionList });

/** Builds the token endpoint, the JWKS document and the route that mints a user's token pair. */
export function oauthTokenRoutes(oauth: OAuthService): RouteSpec[] {
  return [
    route({
      method: 'post',
      path: tokenEndpointPath,
      action: 'auth.oauth.token',
      resource: 'oauth-token',
      access: 'public',
      async handler(context) {
        preventCaching(context.response);
        const parameters = readTokenParameters(context.request.body);
        const grantType = requiredParameter(parameters, 'grant_type');

        let body: TokenResponse;
        if (grantType === 'client_credentials')
          body = await clientCredentialsGrant(oauth, context, parameters);
        else if (grantType === 'refresh_token')
          body = await refreshTokenGrant(oauth, context, parameters);
        else
          throw new OAuthError(
            'unsupported_grant_type',
            'The grant_type must be client_credentials or refresh_token.',
          );
        return { body };
      },
    }),

    route({
      method: 'get',
      path: '/oauth/jwks',
      action: 'auth.oauth.jwks',
      resource: 'oauth-key',
      access: 'public',
      async handler() {
        return { body: await oauth.signingKeys.jwks() };
      },
    }),

    route({
      method: 'post',
      path: '/oauth/user-tokens',
      action: 'auth.oauth.user_token.create',
      resource: 'oauth-token-family',
      access: 'signed-in',
      body: newUserTokens,
      async handler(context) {
        const principal = context.principal!;
        const { name, permissions } = context.body;
        assertGrantable(principal, await context.access(), permissions);
        preventCaching(context.response);

        // Signed before the commit, so an unavailable HSM leaves no family behind.
        const familyId = crypto.randomUUID();
        const issued = await oauth.accessTokens.issue({
          sub: principal.userId,
          clientId: familyId,
          scope: permissions,
        });
        const { refreshToken } = await context.commit((transaction) => {
          context.resourceId = familyId;
          return oauth.refreshTokens.createFamily(
            { id: familyId, userId: principal.userId, name, permissions },
            transaction,
          );
        });

        return {
          status: 201,
          body: {
            access_token: issued.accessToken,
            token_type: 'Bearer',
            expires_in: issued.expiresIn,
            scope: permissions.join(' '),
            refresh_token: refreshToken,
            client_id: familyId,
          },
        };
      },
    }),
  ];
}

/** Token responses carry credentials, so no cache may keep them (RFC 6749 section 5.1). */
function preventCaching(response: Response): void {
  response.set('Cache-Control', 'no-store');
  response.set('Pragma', 'no-cache');
}
