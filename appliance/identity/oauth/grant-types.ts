import type { RouteContext } from '../../http/route';
import { logger } from '../../platform/logger';
import type { Permission, Role } from '../permissions';
import { OAuthError } from './errors';
import { RefreshTokenReused, type PresentedRefreshToken } from './refresh-tokens';
import type { OAuthService } from './service';
import {
  auditableClientId,
  presentedClient,
  requestedScope,
  requiredParameter,
  type TokenParameters,
} from './token-request';

type Context = RouteContext<unknown, unknown, unknown>;

/** Successful token response (RFC 6749 section 5.1). */
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  refresh_token?: string;
}

/**
 * Runs the client credentials grant (RFC 6749 section 4.4): authenticates
 * the client and issues an access token whose `sub` is the client itself.
 */
export async function clientCredentialsGrant(
  oauth: OAuthService,
  context: Context,
  parameters: TokenParameters,
): Promise<TokenResponse> {
  const presented = presentedClient(context.request, parameters);
  if (!presented)
    throw new OAuthError(
      'invalid_client',
      'Authenticate the client with HTTP Basic or with client_id and client_secret.',
    );
  context.auditNote = `grant=client_credentials; client_id=${auditableClientId(presented.clientId)}`;

  const client = await oauth.clients.authenticate(presented.clientId, presented.secret);
  if (!client) {
    if (presented.method === 'client_secret_basic')
      context.response.set('WWW-Authenticate', 'Basic realm="oauth", charset="UTF-8"');
    throw new OAuthError(
      'invalid_client',
      'The client is unknown, disabled or expired, or the secret does not match.',
    );
  }

  const owner = await oauth.users.findById(client.ownerUserId);
  if (!owner || owner.disabled)
    throw new OAuthError(
      'unauthorized_client',
      'The account that owns this client is disabled; ask an admin to register a new client.',
    );
  context.actorUsername = owner.username;

  const available = await stillHeld(oauth, owner, client.permissions);
  const scope = grantedScope(requestedScope(parameters), available);
  const issued = await oauth.accessTokens.issue({
    sub: client.clientId,
    clientId: client.clientId,
    scope,
  });

  await context.commit((transaction) => oauth.clients.recordUse(client.clientId, transaction));
  return {
    access_token: issued.accessToken,
    token_type: 'Bearer',
    expires_in: issued.expiresIn,
    scope: scope.join(' '),
  };
}

/**
 * Runs the refresh token grant (RFC 6749 section 6) with rotation: the
 * presented token is used up and a new pair is issued. A token that was
 * already used revokes its whole family, because one of the two presenters
 * has a copy.
 */
export async function refreshTokenGrant(
  oauth: OAuthService,
  context: Context,
  parameters: TokenParameters,
): Promise<TokenResponse> {
  if (presentedClient(context.request, parameters))
    throw new OAuthError(
      'invalid_request',
      'Refresh tokens of user token families are sent without client authentication.',
    );

  const presented = await oauth.refreshTokens.find(requiredParameter(parameters, 'refresh_token'));
  if (!presented)
    throw new OAuthError(
      'invalid_grant',
      'The refresh token was not found; sign in and create a new token pair.',
    );

  const family = presented.family;
  context.auditNote = `grant=refresh_token; client_id=${family.id}`;
  if (parameters.client_id !== undefined && parameters.client_id !== family.id)
    throw new OAuthError(
      'invalid_grant',
      'The refresh token was not issued to this client_id; send the client_id that POST /api/v1/oauth/user-tokens returned, or omit it.',
    );

  const user = await oauth.users.findById(family.userId);
  if (user) context.actorUsername = user.username;
  if (presented.used) return revokeReusedFamily(oauth, context, presented);
  if (family.revokedAt)
    throw new OAuthError(
      'invalid_grant',
      'The refresh token belongs to a revoked token family; sign in and create a new token pair.',
    );
  if (presented.expired || Date.now() >= Date.parse(family.expiresAt))
    throw new OAuthError(
      'invalid_grant',
      'The refresh token has expired; sign in and create a new token pair.',
    );
  if (!user || user.disabled)
    throw new OAuthError(
      'invalid_grant',
      'The account of this token family is disabled; ask an admin to enable it.',
    );

  const available = await stillHeld(oauth, user, family.permissions);
  const scope = grantedScope(requestedScope(parameters), available);
  const issued = await oauth.accessTokens.issue({ sub: user.id, clientId: family.id, scope });

  try {
    const refreshToken = await context.commit((transaction) =>
      oauth.refreshTokens.rotate(presented, transaction),
    );
    return {
      access_token: issued.accessToken,
      token_type: 'Bearer',
      expires_in: issued.expiresIn,
      scope: scope.join(' '),
      refresh_token: refreshToken,
    };
  } catch (error) {
    if (error instanceof RefreshTokenReused) return revokeReusedFamily(oauth, context, presented);
    throw error;
  }
}

/**
 * Revokes the family of a reused refresh token and rejects the request. The
 * revocation is written on its own, outside the request's audited commit,
 * because the request fails. The pipeline then records the failure with the
 * note set here, and a failed audit write cannot undo the revocation.
 */
async function revokeReusedFamily(
  oauth: OAuthService,
  context: Context,
  presented: PresentedRefreshToken,
): Promise<never> {
  const family = presented.family;
  await oauth.database.write((transaction) =>
    oauth.refreshTokens.revokeFamily(family.id, transaction),
  );

  context.auditNote = `grant=refresh_token; client_id=${family.id}; refresh token reuse, token family revoked`;
  logger.warn(
    { familyId: family.id, userId: family.userId },
    'refresh token reused; token family revoked',
  );
  throw new OAuthError(
    'invalid_grant',
    'The refresh token was already used, so its token family is now revoked; sign in and create a new token pair.',
  );
}

/** Checks a requested scope against the available permissions; no request means all of them. */
function grantedScope(
  requested: string[] | undefined,
  available: readonly Permission[],
): Permission[] {
  if (!available.length)
    throw new OAuthError(
      'invalid_scope',
      'None of the granted permissions is still allowed for the owning account.',
    );
  if (requested === undefined) return [...available];

  const beyond = requested.filter((name) => !available.includes(name as Permission));
  if (beyond.length)
    throw new OAuthError(
      'invalid_scope',
      `The scope requests ${beyond.join(', ').slice(0, 200)}, which this grant does not contain; request only ${available.join(' ')}.`,
    );
  return requested as Permission[];
}

/** Keeps the granted permissions the owner still has, when the runtime provides that set. */
async function stillHeld(
  oauth: OAuthService,
  owner: { id: string; role: Role },
  granted: readonly Permission[],
): Promise<Permission[]> {
  const held = await oauth.heldBy?.(owner);
  return held ? granted.filter((permission) => held.has(permission)) : [...granted];
}
