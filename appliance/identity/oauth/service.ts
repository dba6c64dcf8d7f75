import type { KeyProvider } from '../../../hsm/key-provider';
import { problems } from '../../http/problem';
import type { Principal } from '../../http/route';
import type { Database } from '../../platform/database';
import { logger } from '../../platform/logger';
import type { Permission, Role } from '../permissions';
import type { UserDirectory } from '../users';
import { AccessTokens } from './access-tokens';
import { OAuthClientStore } from './clients';
import { RefreshTokenStore } from './refresh-tokens';
import type { OAuthSettings } from './settings';
import { AccessTokenSigningKeys } from './signing-keys';

/** Prefix of the `apiKey.id` of a principal that authenticated with an access token. */
export const oauthKeyIdPrefix = 'oauth:';

/**
 * OAuth 2.0 for machine access: registered clients (client credentials grant),
 * token families of signed-in users (refresh token grant), and the JWT access
 * tokens both receive.
 */
export class OAuthService {
  readonly clients: OAuthClientStore;
  readonly refreshTokens: RefreshTokenStore;
  readonly signingKeys: AccessTokenSigningKeys;
  readonly accessTokens: AccessTokens;

  /**
   * Returns the permissions a user has now at some scope, so issued tokens advertise
   * no scope their owner lost; set by the runtime from AccessControl. Each
   * request is decided by the route pipeline whether or not it is set.
   */
  heldBy?: (owner: { id: string; role: Role }) => Promise<ReadonlySet<Permission>>;

  constructor(
    readonly database: Database,
    keys: KeyProvider | undefined,
    readonly users: UserDirectory,
    readonly settings: OAuthSettings,
  ) {
    this.clients = new OAuthClientStore(database);
    this.refreshTokens = new RefreshTokenStore(database, {
      tokenSeconds: settings.refreshTokenTtlSeconds,
      familySeconds: settings.refreshFamilyTtlSeconds,
    });
    this.signingKeys = new AccessTokenSigningKeys(database, keys);
    this.accessTokens = new AccessTokens(this.signingKeys, settings);
  }

  /**
   * Resolves a JWT access token to the user it acts for. Its permissions are
   * the token's scope cut down to what its client or token family was granted
   * and to what the user's role grants now. A disabled client, a revoked
   * family or a disabled user stops the token at once. Any failure is a 401 problem.
   */
  async authenticateBearer(token: string): Promise<Principal> {
    const rejected = problems.unauthenticated(
      'The bearer access token is malformed, expired, not signed by this appliance, meant for another audience, or its client was disabled; request a new one from POST /api/v1/oauth/token.',
    );

    const { claims, failure } = await this.accessTokens.verify(token);
    if (!claims) {
      logger.debug({ failure }, 'access token rejected');
      throw rejected;
    }

    const grant = await this.grantOf(claims.clientId, claims.sub);
    if (!grant) {
      logger.debug(
        { clientId: claims.clientId, jti: claims.jti },
        'access token of a gone grant rejected',
      );
      throw rejected;
    }

    const owner = await this.users.findById(grant.userId);
    if (!owner || owner.disabled) throw rejected;
    return {
      userId: owner.id,
      username: owner.username,
      role: owner.role,
      mustChangePassword: owner.mustChangePassword,
      apiKey: {
        id: oauthKeyIdPrefix + claims.clientId,
        permissions: effectivePermissions(claims.scope, grant.permissions),
      },
    };
  }

  /**
   * Finds the live grant behind a token: a client when `sub` is the client
   * itself, else a token family of the user `sub`.
   */
  private async grantOf(
    clientId: string,
    sub: string,
  ): Promise<{ userId: string; permissions: readonly Permission[] } | undefined> {
    if (sub === clientId) {
      const client = await this.clients.findLive(clientId);
      return client && { userId: client.ownerUserId, permissions: client.permissions };
    }

    const family = await this.refreshTokens.findLiveFamily(clientId);
    if (!family || family.userId !== sub) return undefined;
    return { userId: family.userId, permissions: family.permissions };
  }
}

/**
 * Keeps the permissions of `requested` that the grant contains. What the
 * owner has now is decided per request by the route pipeline, which checks
 * the owner's current roles and grants as well as these.
 */
export function effectivePermissions(
  requested: readonly Permission[],
  granted: readonly Permission[],
): Permission[] {
  return requested.filter((permission) => granted.includes(permission));
}
