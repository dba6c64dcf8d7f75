import crypto from 'node:crypto';

import { errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from 'jose';

import type { Permission } from '../permissions';
import type { OAuthSettings } from './settings';
import { accessTokenAlgorithm, type AccessTokenSigningKeys } from './signing-keys';

/** JOSE `typ` of access tokens (RFC 9068), checked on verification so no other JWT passes as one. */
const accessTokenType = 'at+jwt';

/** Clock skew in seconds accepted on `exp`, `nbf` and `iat`. */
const clockToleranceSeconds = 5;

/** Three base64url parts separated by dots; the signature part may be empty (`alg: none`). */
const compactJwsPattern = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Claims of a verified access token that authentication needs. */
export interface AccessTokenClaims {
  sub: string;
  clientId: string;
  scope: Permission[];
  jti: string;
}

/** A signed access token and its lifetime in seconds, as the token response reports it. */
export interface IssuedAccessToken {
  accessToken: string;
  expiresIn: number;
}

/** Tells whether a bearer value has the shape of a compact JWS, before any verification. */
export function looksLikeJwt(value: string): boolean {
  return compactJwsPattern.test(value);
}

/** Signs and verifies JWT access tokens with the HSM-protected Ed25519 key. */
export class AccessTokens {
  constructor(
    private readonly signingKeys: AccessTokenSigningKeys,
    private readonly settings: OAuthSettings,
  ) {}

  /** Signs an access token for `sub` on behalf of `clientId` with `scope`; needs the HSM. */
  async issue(input: {
    sub: string;
    clientId: string;
    scope: Permission[];
  }): Promise<IssuedAccessToken> {
    const key = await this.signingKeys.current();
    const accessToken = await new SignJWT({
      client_id: input.clientId,
      scope: input.scope.join(' '),
    })
      .setProtectedHeader({ alg: accessTokenAlgorithm, typ: accessTokenType, kid: key.kid })
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.audience)
      .setSubject(input.sub)
      .setIssuedAt()
      .setExpirationTime(`${this.settings.accessTokenTtlSeconds}s`)
      .setJti(crypto.randomUUID())
      .sign(key.privateKey);
    return { accessToken, expiresIn: this.settings.accessTokenTtlSeconds };
  }

  /**
   * Verifies signature, algorithm, type, issuer, audience and lifetime.
   * Returns the claims, or a short failure code (a jose error code) for logs
   * when the token fails any check.
   */
  async verify(token: string): Promise<{ claims?: AccessTokenClaims; failure?: string }> {
    try {
      const { payload } = await jwtVerify(
        token,
        async (header) => {
          const key = header.kid ? await this.signingKeys.publicKey(header.kid) : undefined;
          if (!key) throw new joseErrors.JWKSNoMatchingKey();
          return key;
        },
        {
          algorithms: [accessTokenAlgorithm],
          typ: accessTokenType,
          issuer: this.settings.issuer,
          audience: this.settings.audience,
          clockTolerance: clockToleranceSeconds,
          requiredClaims: ['iss', 'aud', 'sub', 'exp', 'iat', 'jti', 'client_id', 'scope'],
        },
      );
      const claims = claimsOf(payload);
      return claims ? { claims } : { failure: 'claim_types' };
    } catch (error) {
      if (error instanceof joseErrors.JOSEError) return { failure: error.code };
      throw error;
    }
  }
}

function claimsOf(payload: JWTPayload): AccessTokenClaims | undefined {
  const { sub, jti, client_id: clientId, scope } = payload;
  if (typeof sub !== 'string' || typeof jti !== 'string') return undefined;
  if (typeof clientId !== 'string' || typeof scope !== 'string') return undefined;
  return { sub, jti, clientId, scope: scope.split(' ').filter(Boolean) as Permission[] };
}
