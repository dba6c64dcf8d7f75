import * as client from 'openid-client';

import { ProblemError } from '../../http/problem';
import { logger } from '../../platform/logger';
import type { LoginAttempt } from './login-attempts';
import type { OidcSettings } from './settings';

/** The identity the provider asserted, after openid-client checked the ID token. */
export interface VerifiedClaims {
  issuer: string;
  subject: string;
  /** ID token claims, completed by the UserInfo response when the provider has that endpoint. */
  claims: Record<string, unknown>;
}

const providerUnavailable = () =>
  new ProblemError(
    502,
    'identity_provider_unavailable',
    'Identity provider unavailable',
    'The OpenID Connect provider could not be reached or sent an invalid response; try again, or check OIDC_ISSUER.',
  );

/**
 * The appliance as an OpenID Connect client (openid-client). The provider's
 * discovery document is fetched at the first sign-in, not at start-up, so the
 * appliance starts while the provider is down; a failed discovery is retried
 * at the next sign-in.
 */
export class ProviderClient {
  private configuration?: Promise<client.Configuration>;

  constructor(private readonly settings: OidcSettings) {}

  /** Builds the provider's authorisation URL with PKCE (S256), state and nonce, and the attempt to keep. */
  async start(redirectUri: string): Promise<{ url: URL; attempt: LoginAttempt }> {
    const configuration = await this.discover();
    const attempt: LoginAttempt = {
      state: client.randomState(),
      nonce: client.randomNonce(),
      codeVerifier: client.randomPKCECodeVerifier(),
      redirectUri,
    };
    const url = client.buildAuthorizationUrl(configuration, {
      redirect_uri: redirectUri,
      scope: this.settings.scopes,
      response_type: 'code',
      code_challenge: await client.calculatePKCECodeChallenge(attempt.codeVerifier),
      code_challenge_method: 'S256',
      state: attempt.state,
      nonce: attempt.nonce,
    });
    return { url, attempt };
  }

  /**
   * Checks the callback (state, then the code at the token endpoint with the
   * PKCE verifier, then the ID token's signature, issuer, audience, expiry and
   * nonce) and returns the verified claims. Tokens are used here and dropped.
   */
  async finish(callbackUrl: URL, attempt: LoginAttempt): Promise<VerifiedClaims> {
    const configuration = await this.discover();
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(configuration, callbackUrl, {
        pkceCodeVerifier: attempt.codeVerifier,
        expectedState: attempt.state,
        expectedNonce: attempt.nonce,
        idTokenExpected: true,
      });
    } catch (error) {
      throw callbackProblem(error);
    }

    const idToken = tokens.claims();
    if (!idToken) throw callbackProblem(new Error('no ID token'));
    const claims: Record<string, unknown> = { ...idToken };

    if (configuration.serverMetadata().userinfo_endpoint) {
      try {
        const userInfo = await client.fetchUserInfo(
          configuration,
          tokens.access_token,
          idToken.sub,
        );
        Object.assign(claims, userInfo, { sub: idToken.sub });
      } catch (error) {
        logger.warn({ err: describe(error) }, 'OIDC userinfo request failed');
        throw providerUnavailable();
      }
    }
    return { issuer: idToken.iss, subject: idToken.sub, claims };
  }

  private discover(): Promise<client.Configuration> {
    this.configuration ??= client
      .discovery(
        this.settings.issuer,
        this.settings.clientId,
        undefined,
        client.ClientSecretBasic(this.settings.clientSecret),
        // Settings accept plain http only for a loopback issuer (see settings.ts).
        this.settings.issuer.protocol === 'http:'
          ? { execute: [client.allowInsecureRequests] }
          : undefined,
      )
      .catch((error: unknown) => {
        this.configuration = undefined;
        logger.warn({ err: describe(error) }, 'OIDC discovery failed');
        throw providerUnavailable();
      });
    return this.configuration;
  }
}

/**
 * Maps an openid-client rejection to a problem: a bad or missing state is the
 * browser's request at fault (400); a rejected code or an invalid ID token is a
 * denied sign-in (401); an unreachable provider is 502.
 */
function callbackProblem(error: unknown): ProblemError {
  logger.info({ err: describe(error) }, 'OIDC callback rejected');
  const code = (error as { code?: string }).code;

  if (/"state"/.test(causeMessages(error)))
    return new ProblemError(
      400,
      'invalid_oidc_state',
      'Invalid sign-in state',
      'The callback does not belong to this sign-in; start again at GET /api/v1/auth/oidc/login.',
    );
  if (code === 'OAUTH_AUTHORIZATION_RESPONSE_ERROR')
    return new ProblemError(
      401,
      'oidc_sign_in_refused',
      'Sign-in refused',
      'The identity provider did not authorise this sign-in; start again at GET /api/v1/auth/oidc/login.',
    );
  if (error instanceof TypeError && !code) return providerUnavailable();
  return new ProblemError(
    401,
    'oidc_sign_in_refused',
    'Sign-in refused',
    "The identity provider's response could not be verified; start again at GET /api/v1/auth/oidc/login.",
  );
}

/** The messages of an error and its causes: openid-client wraps the check that failed in `cause`. */
function causeMessages(error: unknown): string {
  const messages: string[] = [];
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    messages.push(current.message);
    current = current.cause;
  }
  return messages.join(' | ');
}

/** A log-safe description of an openid-client error: its name, code and message, no request or token data. */
function describe(error: unknown) {
  if (!(error instanceof Error)) return { message: String(error) };
  return {
    name: error.name,
    code: (error as { code?: string }).code,
    message: causeMessages(error),
  };
}
