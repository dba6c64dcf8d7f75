import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';

import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import * as client from 'openid-client';
import { QueryTypes } from 'sequelize';

import { KeyRotationService, type KeyOperator } from '../../keys/rotation';
import { auditedCommit } from '../../keys/rotation-schedule';
import type { ApiClient, ApiResponse } from '../../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../../testing/harness';

interface AuditRow {
  action: string;
  outcome: string;
  actor_username: string | null;
  reason: string | null;
}

interface RegisteredClient {
  clientId: string;
  clientSecret: string;
}

/** Encodes parameters as application/x-www-form-urlencoded. */
function form(parameters: Record<string, string>): string {
  return new URLSearchParams(parameters).toString();
}

function basic(clientId: string, secret: string): string {
  const encode = (text: string) => encodeURIComponent(text).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`;
}

describe('OAuth 2.0 client credentials and refresh tokens @integration', function () {
  this.timeout(120_000);
  let test: TestAppliance;
  let admin: ApiClient;
  let ca: Buffer;

  before(async function () {
    test = await startTestAppliance();
    admin = await test.admin();
    ca = fs.readFileSync(path.join(test.appliance.config.tlsDir, 'appliance.crt'));
  });

  after(async function () {
    await test?.close();
  });

  /** Sends a token request as a form (default) or JSON body, optionally with an Authorization header. */
  function tokenRequest(
    parameters: Record<string, string>,
    options: { json?: boolean; authorization?: string } = {},
  ): Promise<ApiResponse> {
    const headers: Record<string, string> = {
      'content-type': options.json ? 'application/json' : 'application/x-www-form-urlencoded',
      ...(options.authorization ? { authorization: options.authorization } : {}),
    };
    const body = options.json ? JSON.stringify(parameters) : form(parameters);
    return test.anonymous().request('POST', '/oauth/token', body, headers);
  }

  /** Calls an API route with a bearer token and no cookie. */
  function withBearer(token: string, method: string, route: string): Promise<ApiResponse> {
    return test.anonymous().request(method, route, undefined, { authorization: `Bearer ${token}` });
  }

  async function register(
    permissions: string[],
    owner: ApiClient = admin,
  ): Promise<RegisteredClient> {
    const response = await owner.post('/oauth/clients', {
      name: `client-${crypto.randomBytes(3).toString('hex')}`,
      permissions,
    });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    return response.body as RegisteredClient;
  }

  async function clientToken(registered: RegisteredClient, scope?: string): Promise<string> {
    const response = await tokenRequest(
      { grant_type: 'client_credentials', ...(scope ? { scope } : {}) },
      { authorization: basic(registered.clientId, registered.clientSecret) },
    );
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return (response.body as { access_token: string }).access_token;
  }

  async function lastAudit(action: string): Promise<AuditRow> {
    const rows = await test.appliance.database.sequelize.query<AuditRow>(
      'SELECT * FROM audit_records WHERE action = :action ORDER BY seq DESC LIMIT 1',
      { type: QueryTypes.SELECT, replacements: { action } },
    );
    return rows[0];
  }

  /** Signs arbitrary claims with the appliance's own access token key, to test what verification rejects. */
  async function signWithApplianceKey(
    claims: Record<string, unknown>,
    header: Record<string, unknown> = {},
  ): Promise<string> {
    const key = await test.appliance.identity.oauth.signingKeys.current();
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: key.kid, ...header })
      .sign(key.privateKey);
  }

  describe('client registration', function () {
    it('shows the secret once and lists only a hint', async function () {
      const registered = await register(['users:read']);
      assert.match(registered.clientSecret, /^pbs_[A-Za-z0-9_-]{43}$/);

      const list = await admin.get('/oauth/clients');
      assert.equal(list.status, 200);
      const listed = (list.body as { items: Record<string, unknown>[] }).items.find(
        (item) => item.clientId === registered.clientId,
      );
      assert.ok(listed);
      assert.equal(listed.clientSecret, undefined);
      assert.equal(listed.secretHint, `pbs_…${registered.clientSecret.slice(-4)}`);
      assert.equal((await lastAudit('auth.oauth.client.create')).outcome, 'success');
    });

    it('rejects unknown permissions and past expiry', async function () {
      const unknown = await admin.post('/oauth/clients', { name: 'x', permissions: ['nope:read'] });
      assert.equal(unknown.status, 400);
      assert.equal(unknown.body.errors[0].field, 'permissions.0');

      const past = await admin.post('/oauth/clients', {
        name: 'x',
        permissions: ['users:read'],
        expiresAt: '2020-01-01T00:00:00Z',
      });
      assert.equal(past.status, 400);
      assert.equal(past.body.errors[0].field, 'expiresAt');
    });

    it('denies registration to non-admins', async function () {
      const { client: analyst } = await test.userWithRole('analyst');
      const response = await analyst.post('/oauth/clients', {
        name: 'x',
        permissions: ['prompts:read'],
      });
      assert.equal(response.status, 403);
    });

    it('keeps a bearer-made client within the bearer scope', async function () {
      const registered = await register(['users:create', 'users:read']);
      const token = await clientToken(registered);
      const response = await test
        .anonymous()
        .request(
          'POST',
          '/oauth/clients',
          { name: 'wider', permissions: ['keys:delete'] },
          { authorization: `Bearer ${token}` },
        );
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.errors[0].field, 'permissions.0');
    });
  });

  describe('token endpoint', function () {
    it('issues a signed JWT with the required claims', async function () {
      const registered = await register(['users:read', 'audit:read']);
      const response = await tokenRequest(
        { grant_type: 'client_credentials' },
        { authorization: basic(registered.clientId, registered.clientSecret) },
      );
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.equal(response.headers['cache-control'], 'no-store');
      assert.equal(response.body.token_type, 'Bearer');
      assert.equal(response.body.expires_in, 300);
      assert.equal(response.body.scope, 'users:read audit:read');

      const token = response.body.access_token as string;
      const header = decodeProtectedHeader(token);
      assert.equal(header.alg, 'EdDSA');
      assert.equal(header.typ, 'at+jwt');

      const claims = decodeJwt(token);
      assert.equal(claims.iss, 'urn:prompt-bank-appliance');
      assert.equal(claims.aud, 'urn:prompt-bank-appliance:api');
      assert.equal(claims.sub, registered.clientId);
      assert.equal(claims.client_id, registered.clientId);
      assert.equal(claims.scope, 'users:read audit:read');
      assert.equal((claims.exp ?? 0) - (claims.iat ?? 0), 300);
      assert.match(String(claims.jti), /^[0-9a-f-]{36}$/);
    });

    it('publishes a JWKS that verifies the token', async function () {
      const token = await clientToken(await register(['users:read']));
      const jwks = await test.anonymous().get('/oauth/jwks');
      assert.equal(jwks.status, 200);
      assert.equal(jwks.body.keys[0].d, undefined, 'the JWKS must not contain the private key');

      const { payload } = await jwtVerify(token, createLocalJWKSet(jwks.body), {
        algorithms: ['EdDSA'],
        issuer: 'urn:prompt-bank-appliance',
        audience: 'urn:prompt-bank-appliance:api',
      });
      assert.equal(payload.scope, 'users:read');
    });

    it('accepts client_secret_post in a JSON body', async function () {
      const registered = await register(['users:read', 'audit:read']);
      const response = await tokenRequest(
        {
          grant_type: 'client_credentials',
          client_id: registered.clientId,
          client_secret: registered.clientSecret,
          scope: 'audit:read',
        },
        { json: true },
      );
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.equal(response.body.scope, 'audit:read');
    });

    it('returns RFC 6749 errors as JSON', async function () {
      const registered = await register(['users:read']);
      const cases: [string, Promise<ApiResponse>, number, string][] = [
        ['empty body', tokenRequest({}), 400, 'invalid_request'],
        [
          'unknown grant type',
          tokenRequest({ grant_type: 'password' }),
          400,
          'unsupported_grant_type',
        ],
        [
          'wrong secret',
          tokenRequest(
            { grant_type: 'client_credentials' },
            { authorization: basic(registered.clientId, `pbs_${'A'.repeat(43)}`) },
          ),
          401,
          'invalid_client',
        ],
        [
          'no client authentication',
          tokenRequest({ grant_type: 'client_credentials' }),
          401,
          'invalid_client',
        ],
        [
          'two authentication methods',
          tokenRequest(
            {
              grant_type: 'client_credentials',
              client_id: registered.clientId,
              client_secret: registered.clientSecret,
            },
            { authorization: basic(registered.clientId, registered.clientSecret) },
          ),
          400,
          'invalid_request',
        ],
        [
          'scope beyond the grant',
          tokenRequest(
            { grant_type: 'client_credentials', scope: 'keys:delete' },
            { authorization: basic(registered.clientId, registered.clientSecret) },
          ),
          400,
          'invalid_scope',
        ],
        [
          'repeated parameter',
          test.anonymous().request('POST', '/oauth/token', 'grant_type=a&grant_type=b', {
            'content-type': 'application/x-www-form-urlencoded',
          }),
          400,
          'invalid_request',
        ],
      ];

      for (const [name, pending, status, error] of cases) {
        const response = await pending;
        assert.equal(response.status, status, `${name}: ${JSON.stringify(response.body)}`);
        assert.match(String(response.headers['content-type']), /^application\/json/, name);
        assert.equal(response.body.error, error, name);
        assert.equal(typeof response.body.error_description, 'string', name);
      }
    });

    it('sends a Basic challenge on a failed Basic login', async function () {
      const registered = await register(['users:read']);
      const response = await tokenRequest(
        { grant_type: 'client_credentials' },
        { authorization: basic(registered.clientId, 'wrong') },
      );
      assert.equal(response.status, 401);
      assert.match(String(response.headers['www-authenticate']), /^Basic realm="oauth"/);

      const audit = await lastAudit('auth.oauth.token');
      assert.equal(audit.outcome, 'denied');
      assert.match(String(audit.reason), /oauth_invalid_client/);
      assert.ok(!String(audit.reason).includes('wrong'));
    });

    it('works with openid-client as the client', async function () {
      const registered = await register(['users:read']);
      const configuration = new client.Configuration(
        {
          issuer: 'urn:prompt-bank-appliance',
          token_endpoint: new URL('/api/v1/oauth/token', test.appliance.url).href,
        },
        registered.clientId,
        undefined,
        client.ClientSecretBasic(registered.clientSecret),
      );
      configuration[client.customFetch] = (url, options) => fetchTrusting(ca, url, options);

      const tokens = await client.clientCredentialsGrant(configuration, { scope: 'users:read' });
      assert.equal(tokens.token_type, 'bearer');
      assert.equal(tokens.scope, 'users:read');

      const users = await withBearer(tokens.access_token, 'GET', '/users');
      assert.equal(users.status, 200, JSON.stringify(users.body));
    });
  });

  describe('bearer authentication', function () {
    it('allows the scope and denies the rest', async function () {
      const token = await clientToken(await register(['users:read', 'audit:read']), 'users:read');

      assert.equal((await withBearer(token, 'GET', '/users')).status, 200);
      const outside = await withBearer(token, 'GET', '/audit/verify');
      assert.equal(outside.status, 403, JSON.stringify(outside.body));
      const account = await withBearer(token, 'GET', '/api-keys');
      assert.equal(account.status, 403, JSON.stringify(account.body));

      const audit = await lastAudit('identity.user.list');
      assert.match(String(audit.reason), /api_key=oauth:/);
    });

    it('rejects bad tokens with a 401 problem', async function () {
      const registered = await register(['users:read']);
      const good = await clientToken(registered);
      const claims = decodeJwt(good);
      const now = Math.floor(Date.now() / 1000);
      const [headerPart, payloadPart, signaturePart] = good.split('.');
      const publicJwk = (await test.anonymous().get('/oauth/jwks')).body.keys[0] as {
        x: string;
      };

      const tampered = `${headerPart}.${Buffer.from(
        JSON.stringify({ ...claims, scope: 'users:read users:delete' }),
      ).toString('base64url')}.${signaturePart}`;
      const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString(
        'base64url',
      )}.${payloadPart}.`;
      const hs256 = await new SignJWT({ ...claims })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: decodeProtectedHeader(good).kid })
        .sign(Buffer.from(publicJwk.x, 'base64url'));
      const expired = await signWithApplianceKey({ ...claims, iat: now - 900, exp: now - 600 });
      const wrongAudience = await signWithApplianceKey({ ...claims, aud: 'another-service' });
      const wrongIssuer = await signWithApplianceKey({ ...claims, iss: 'https://elsewhere' });
      const wrongType = await signWithApplianceKey({ ...claims }, { typ: 'JWT' });
      const notYetValid = await signWithApplianceKey({ ...claims, nbf: now + 600 });

      const cases: [string, string][] = [
        ['tampered payload', tampered],
        ['alg none', none],
        ['HS256 with the public key', hs256],
        ['expired', expired],
        ['wrong audience', wrongAudience],
        ['wrong issuer', wrongIssuer],
        ['wrong typ', wrongType],
        ['not yet valid', notYetValid],
        ['malformed', 'abc.def.ghi'],
      ];
      for (const [name, token] of cases) {
        const response = await withBearer(token, 'GET', '/users');
        assert.equal(response.status, 401, `${name}: ${JSON.stringify(response.body)}`);
        assert.match(String(response.headers['content-type']), /^application\/problem\+json/, name);
      }
      assert.equal((await withBearer(good, 'GET', '/users')).status, 200);
    });

    it('keeps pba_ API keys working', async function () {
      const created = await admin.post('/api-keys', {
        name: 'script',
        permissions: ['users:read'],
        expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
      });
      assert.equal(created.status, 201);
      assert.equal((await withBearer(created.body.key as string, 'GET', '/users')).status, 200);
    });

    it('stops tokens of a rotated secret and a disabled client', async function () {
      const registered = await register(['users:read']);
      const token = await clientToken(registered);

      const rotated = await admin.post(`/oauth/clients/${registered.clientId}/secret`);
      assert.equal(rotated.status, 200);
      const oldSecret = await tokenRequest(
        { grant_type: 'client_credentials' },
        { authorization: basic(registered.clientId, registered.clientSecret) },
      );
      assert.equal(oldSecret.status, 401);
      const fresh = await clientToken({
        clientId: registered.clientId,
        clientSecret: rotated.body.clientSecret as string,
      });
      assert.equal((await withBearer(fresh, 'GET', '/users')).status, 200);

      const disabled = await admin.post(`/oauth/clients/${registered.clientId}/disable`);
      assert.equal(disabled.status, 200);
      assert.ok(disabled.body.disabledAt);
      assert.equal((await withBearer(token, 'GET', '/users')).status, 401);
      assert.equal((await withBearer(fresh, 'GET', '/users')).status, 401);
      assert.equal((await admin.post(`/oauth/clients/${registered.clientId}/secret`)).status, 404);
    });

    it('cuts a client down to its owner role', async function () {
      const username = `owner-${crypto.randomBytes(3).toString('hex')}`;
      const created = await admin.post('/users', {
        username,
        password: `initial-${crypto.randomBytes(8).toString('hex')}`,
        role: 'admin',
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const ownerId = created.body.id as string;

      // Registered directly in the store, because the owner would first have to change the one-time password.
      const registered = await test.appliance.database.write((transaction) =>
        test.appliance.identity.oauth.clients.create(
          ownerId,
          { name: 'owned', permissions: ['users:read', 'audit:read'] },
          transaction,
        ),
      );
      await test.appliance.database.sequelize.query(
        'UPDATE users SET must_change_password = 0 WHERE id = :id',
        { replacements: { id: ownerId } },
      );
      const token = await clientToken({
        clientId: registered.summary.clientId,
        clientSecret: registered.secret,
      });
      assert.equal((await withBearer(token, 'GET', '/users')).status, 200);

      const demoted = await admin.patch(`/users/${ownerId}`, { role: 'auditor' });
      assert.equal(demoted.status, 200, JSON.stringify(demoted.body));
      assert.equal((await withBearer(token, 'GET', '/users')).status, 403);

      const renewed = await tokenRequest(
        { grant_type: 'client_credentials' },
        { authorization: basic(registered.summary.clientId, registered.secret) },
      );
      assert.equal(renewed.status, 200, JSON.stringify(renewed.body));
      assert.equal(renewed.body.scope, 'audit:read');
    });
  });

  describe('user token pairs', function () {
    async function mintPair(user: ApiClient, permissions: string[]) {
      const response = await user.post('/oauth/user-tokens', { name: 'cli', permissions });
      assert.equal(response.status, 201, JSON.stringify(response.body));
      return response.body as { access_token: string; refresh_token: string; client_id: string };
    }

    function refresh(refreshToken: string, json = false): Promise<ApiResponse> {
      return tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken }, { json });
    }

    it('needs a session with the CSRF header', async function () {
      const token = await clientToken(await register(['users:read']));
      const byBearer = await test
        .anonymous()
        .request(
          'POST',
          '/oauth/user-tokens',
          { name: 'cli', permissions: ['users:read'] },
          { authorization: `Bearer ${token}` },
        );
      assert.equal(byBearer.status, 403);

      const withoutCsrf = await admin.request(
        'POST',
        '/oauth/user-tokens',
        { name: 'cli', permissions: ['users:read'] },
        { 'x-requested-with': '' },
      );
      assert.equal(withoutCsrf.status, 403, JSON.stringify(withoutCsrf.body));
    });

    it('rejects permissions beyond the role', async function () {
      const { client: analyst } = await test.userWithRole('analyst');
      const response = await analyst.post('/oauth/user-tokens', {
        name: 'cli',
        permissions: ['users:read'],
      });
      assert.equal(response.status, 400);
      assert.equal(response.body.errors[0].field, 'permissions.0');
    });

    it('rotates the refresh token on each use', async function () {
      const pair = await mintPair(admin, ['users:read']);
      assert.equal((await withBearer(pair.access_token, 'GET', '/users')).status, 200);
      assert.equal(decodeJwt(pair.access_token).client_id, pair.client_id);

      const first = await refresh(pair.refresh_token);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.notEqual(first.body.refresh_token, pair.refresh_token);
      assert.equal((await withBearer(first.body.access_token, 'GET', '/users')).status, 200);

      const second = await refresh(first.body.refresh_token as string, true);
      assert.equal(second.status, 200, JSON.stringify(second.body));
      assert.equal((await lastAudit('auth.oauth.token')).outcome, 'success');
    });

    it('revokes the family on refresh token reuse', async function () {
      const pair = await mintPair(admin, ['users:read']);
      const rotated = await refresh(pair.refresh_token);
      assert.equal(rotated.status, 200);

      const reused = await refresh(pair.refresh_token);
      assert.equal(reused.status, 400);
      assert.equal(reused.body.error, 'invalid_grant');
      const audit = await lastAudit('auth.oauth.token');
      assert.equal(audit.outcome, 'failure');
      assert.match(String(audit.reason), /refresh token reuse, token family revoked/);
      assert.equal(audit.actor_username, 'admin');

      const successor = await refresh(rotated.body.refresh_token as string);
      assert.equal(successor.status, 400);
      assert.equal(successor.body.error, 'invalid_grant');
      assert.equal((await withBearer(rotated.body.access_token, 'GET', '/users')).status, 401);
      assert.equal((await withBearer(pair.access_token, 'GET', '/users')).status, 401);
    });

    it('rejects unknown and malformed refresh tokens', async function () {
      for (const token of [`pbr_${'A'.repeat(43)}`, 'not-a-token']) {
        const response = await refresh(token);
        assert.equal(response.status, 400);
        assert.equal(response.body.error, 'invalid_grant');
      }
    });

    it('keeps the refresh token when the audit fails', async function () {
      const pair = await mintPair(admin, ['users:read']);
      const sequelize = test.appliance.database.sequelize;
      await sequelize.query(
        "CREATE TRIGGER audit_unavailable BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
      );
      try {
        const refused = await refresh(pair.refresh_token);
        assert.equal(refused.status, 503, JSON.stringify(refused.body));
      } finally {
        await sequelize.query('DROP TRIGGER audit_unavailable');
      }

      // The rotation rolled back with the audit record, so the token is still unused.
      const retried = await refresh(pair.refresh_token);
      assert.equal(retried.status, 200, JSON.stringify(retried.body));
    });
  });
});

describe('OAuth tokens with a failing HSM @integration', function () {
  this.timeout(120_000);
  let dir: string;
  let app: TestAppliance | undefined;

  afterEach(async function () {
    await app?.close();
    app = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses token requests and keeps the refresh token', async function () {
    // A token of its own, because closing the key provider breaks it for this process.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth-hsm-faults-'));
    const env = {
      APPLIANCE_DATA_DIR: path.join(dir, 'data'),
      SOFTHSM2_CONF: path.join(dir, 'softhsm', 'softhsm2.conf'),
      HSM_PIN_FILE: path.join(dir, 'secrets', 'hsm-user-pin'),
      HSM_SO_PIN_FILE: path.join(dir, 'secrets', 'hsm-so-pin'),
      LOG_LEVEL: 'silent',
    };
    app = await startTestAppliance({ env });
    const admin = await app.admin();
    const pair = await admin.post('/oauth/user-tokens', {
      name: 'cli',
      permissions: ['users:read'],
    });
    assert.equal(pair.status, 201, JSON.stringify(pair.body));
    const registered = await admin.post('/oauth/clients', {
      name: 'svc',
      permissions: ['users:read'],
    });
    assert.equal(registered.status, 201);

    app.appliance.keys.close();

    const refresh = () =>
      app!
        .anonymous()
        .request(
          'POST',
          '/oauth/token',
          form({ grant_type: 'refresh_token', refresh_token: pair.body.refresh_token as string }),
          { 'content-type': 'application/x-www-form-urlencoded' },
        );
    const refused = await refresh();
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    assert.equal(refused.body.access_token, undefined);

    const credentials = await app
      .anonymous()
      .request('POST', '/oauth/token', form({ grant_type: 'client_credentials' }), {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basic(
          registered.body.clientId as string,
          registered.body.clientSecret as string,
        ),
      });
    assert.equal(credentials.status, 503, JSON.stringify(credentials.body));

    // After a restart on the same token the refused refresh token still works once.
    await app.close();
    app = await startTestAppliance({ env });
    const retried = await refresh();
    assert.equal(retried.status, 200, JSON.stringify(retried.body));
  });
});

describe('OAuth signing key across master key rotation @integration', function () {
  this.timeout(120_000);
  let test: TestAppliance;

  before(async function () {
    test = await startTestAppliance();
  });

  after(async function () {
    await test?.close();
  });

  interface SigningKeyRow {
    kid: string;
    master_key_uri: string;
  }

  async function signingKeyRows(): Promise<SigningKeyRow[]> {
    return test.appliance.database.sequelize.query<SigningKeyRow>(
      'SELECT kid, master_key_uri FROM oauth_signing_keys',
      { type: QueryTypes.SELECT },
    );
  }

  function requestClientToken(registered: RegisteredClient): Promise<ApiResponse> {
    return test
      .anonymous()
      .request('POST', '/oauth/token', form({ grant_type: 'client_credentials' }), {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: basic(registered.clientId, registered.clientSecret),
      });
  }

  async function waitForRotation(admin: ApiClient, id: string): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt++) {
      const progress = await admin.get(`/keys/rotations/${id}`);
      if (progress.body.state !== 'running') {
        assert.equal(progress.body.state, 'completed', JSON.stringify(progress.body));
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`rotation ${id} still running after 5 s`);
  }

  async function issueAndVerify(registered: RegisteredClient): Promise<string> {
    const response = await requestClientToken(registered);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const token = response.body.access_token as string;

    const jwks = await test.anonymous().get('/oauth/jwks');
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks.body), {
      algorithms: ['EdDSA'],
      issuer: 'urn:prompt-bank-appliance',
      audience: 'urn:prompt-bank-appliance:api',
    });
    assert.equal(payload.client_id, registered.clientId);

    const users = await test
      .anonymous()
      .request('GET', '/users', undefined, { authorization: `Bearer ${token}` });
    assert.equal(users.status, 200, JSON.stringify(users.body));
    return String(protectedHeader.kid);
  }

  it('rewraps, retires, then still signs', async function () {
    const { database, keys, audit } = test.appliance;
    const admin = await test.admin();
    const created = await admin.post('/oauth/clients', {
      name: 'rotation-client',
      permissions: ['users:read'],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const registered = created.body as RegisteredClient;

    const kid = await issueAndVerify(registered);
    assert.deepEqual(await signingKeyRows(), [{ kid, master_key_uri: keys.masterKeyUri }]);

    // A rotation of its own, whose rewrap this test runs after checking the retirement refusal.
    const rotation = new KeyRotationService(database, keys);
    const operator: KeyOperator = { trigger: 'cli', actor: 'cli:test' };
    try {
      const record = await rotation.rotate(
        operator,
        auditedCommit(database, audit, operator, 'keys.master.rotate'),
      );
      assert.equal(record.toVersion, 2);

      const early = await admin.request('PUT', '/keys/master/minimum-version', {
        minimumVersion: 2,
      });
      assert.equal(early.status, 409, JSON.stringify(early.body));
      assert.match(early.body.detail, /1 in oauth_signing_keys/);

      const finished = await rotation.rewrap(record.id);
      assert.equal(finished.state, 'completed', JSON.stringify(finished));
      assert.deepEqual(await signingKeyRows(), [{ kid, master_key_uri: record.keyUri }]);

      const retired = await admin.request('PUT', '/keys/master/minimum-version', {
        minimumVersion: 2,
      });
      assert.equal(retired.status, 200, JSON.stringify(retired.body));
      assert.equal(retired.body.items[0].state, 'retired');
    } finally {
      await rotation.stop();
    }

    // The same key pair signs after the rewrap, so tokens issued before stay valid.
    assert.equal(await issueAndVerify(registered), kid);
  });

  it('refuses to sign under a retired version', async function () {
    const { database, keys } = test.appliance;
    const [row] = await database.sequelize.query<{ wrapped_data_key: Buffer }>(
      'SELECT wrapped_data_key FROM oauth_signing_keys',
      { type: QueryTypes.SELECT },
    );
    const [active] = await database.sequelize.query<{ key_uri: string }>(
      `SELECT key_uri FROM key_versions WHERE state = 'active'`,
      { type: QueryTypes.SELECT },
    );
    // Stands for a restored backup: the data key wrapped under the retired version 1 again.
    const dataKey = keys.unwrapDataKey(Buffer.from(row.wrapped_data_key), active.key_uri);
    const underV1 = keys.wrapDataKey(dataKey, keys.masterKeyUri);
    dataKey.fill(0);
    await database.sequelize.query(
      'UPDATE oauth_signing_keys SET wrapped_data_key = :wrapped, master_key_uri = :uri',
      { replacements: { wrapped: underV1, uri: keys.masterKeyUri } },
    );

    const admin = await test.admin();
    const created = await admin.post('/oauth/clients', {
      name: 'retired-client',
      permissions: ['users:read'],
    });
    const registered = created.body as RegisteredClient;
    const refused = await requestClientToken(registered);
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.access_token, undefined);
    assert.match(refused.body.detail, /master key version 1, which is retired/);

    // A rewrap to the active version moves it back, and signing works again.
    const rewrap = await admin.post('/keys/rewrap');
    assert.equal(rewrap.status, 202, JSON.stringify(rewrap.body));
    await waitForRotation(admin, rewrap.body.id);
    const [moved] = await database.sequelize.query<{ master_key_uri: string }>(
      'SELECT master_key_uri FROM oauth_signing_keys',
      { type: QueryTypes.SELECT },
    );
    assert.equal(moved.master_key_uri, active.key_uri);
    const response = await requestClientToken(registered);
    assert.equal(response.status, 200, JSON.stringify(response.body));
  });

  it('rewrap deletes a key from another token', async function () {
    const { database } = test.appliance;
    const admin = await test.admin();
    const created = await admin.post('/oauth/clients', {
      name: 'foreign-key-client',
      permissions: ['users:read'],
    });
    const registered = created.body as RegisteredClient;
    const [before] = await signingKeyRows();

    // Stands for a restore by an older release: the row names the master key of another token.
    await database.sequelize.query('UPDATE oauth_signing_keys SET master_key_uri = :uri', {
      replacements: { uri: 'pkcs11:token=other-token;object=vault-master-key;type=secret-key' },
    });
    const refused = await requestClientToken(registered);
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.match(refused.body.detail, /does not record/);
    assert.match(refused.body.detail, /appliancectl keys rewrap/);

    const rewrap = await admin.post('/keys/rewrap');
    assert.equal(rewrap.status, 202, JSON.stringify(rewrap.body));
    await waitForRotation(admin, rewrap.body.id);
    assert.deepEqual(await signingKeyRows(), []);

    const kid = await issueAndVerify(registered);
    assert.notEqual(kid, before.kid);
  });
});

/** Fetches for openid-client over node:https, trusting the appliance's self-signed certificate. */
function fetchTrusting(
  ca: Buffer,
  url: string,
  options: client.CustomFetchOptions,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      url,
      { method: options.method, headers: options.headers, ca },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const headers = new Headers();
          for (const [name, value] of Object.entries(response.headers)) {
            if (typeof value === 'string') headers.set(name, value);
          }
          resolve(new Response(Buffer.concat(chunks), { status: response.statusCode, headers }));
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(typeof options.body === 'string' ? options.body : options.body?.toString());
  });
}
