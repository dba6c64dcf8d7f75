import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import Provider, { type ClientMetadata } from 'oidc-provider';

/** A person in the test provider's account store. */
export interface TestAccount {
  /** The provider's stable subject; also the login name typed into its form. */
  subject: string;
  preferredUsername?: string;
  email?: string;
  groups: string[];
}

export interface TestProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** The account store; tests change groups between sign-ins. */
  accounts: Map<string, TestAccount>;
  /** Registers the appliance's callback URL as the test client's only redirect URI. */
  registerClient(redirectUri: string): void;
  close(): Promise<void>;
}

/**
 * Starts a real OpenID Connect provider (the `oidc-provider` package, with its
 * built-in development login and consent pages) on 127.0.0.1 with a free port.
 * The port is taken before the provider exists, so the appliance can be
 * configured with the issuer first and the client registered afterwards.
 */
export async function startTestProvider(): Promise<TestProvider> {
  const accounts = new Map<string, TestAccount>();
  const clientId = 'appliance-test';
  const clientSecret = crypto.randomBytes(24).toString('base64url');

  let handler: http.RequestListener = (_request, response) => {
    response.statusCode = 503;
    response.end('provider not ready');
  };
  const server = http.createServer((request, response) => handler(request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

  return {
    issuer,
    clientId,
    clientSecret,
    accounts,
    registerClient(redirectUri) {
      const client: ClientMetadata = {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      };
      const provider = new Provider(issuer, {
        clients: [client],
        jwks: { keys: [{ ...signingKey.export({ format: 'jwk' }), kid: 'test', use: 'sig' }] },
        cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
        claims: {
          openid: ['sub'],
          profile: ['preferred_username'],
          email: ['email'],
          groups: ['groups'],
        },
        pkce: { required: () => true },
        // Lifetimes in seconds; set so the provider does not warn about its defaults.
        ttl: {
          AccessToken: 600,
          AuthorizationCode: 60,
          Grant: 3600,
          IdToken: 600,
          Interaction: 600,
          Session: 3600,
        },
        features: { devInteractions: { enabled: true } },
        findAccount(_context, id) {
          const account = accounts.get(id);
          if (!account) return undefined;
          return {
            accountId: id,
            claims: () => ({
              sub: id,
              preferred_username: account.preferredUsername,
              email: account.email,
              groups: [...account.groups],
            }),
          };
        },
      });
      handler = provider.callback();
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
