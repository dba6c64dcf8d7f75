import type { RouteSpec } from '../../http/route';
import { oauthClientRoutes } from './client-routes';
import type { OAuthService } from './service';
import { oauthTokenRoutes } from './token-routes';

/** Builds every OAuth route: client administration, the token endpoint, JWKS and user token pairs. */
export function oauthRoutes(oauth: OAuthService): RouteSpec[] {
  return [...oauthClientRoutes(oauth), ...oauthTokenRoutes(oauth)];
}
