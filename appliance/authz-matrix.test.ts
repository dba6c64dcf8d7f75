import assert from 'node:assert/strict';

import type { Role } from './identity/permissions';
import type { ApiClient, ApiResponse } from './testing/api-client';
import { startTestAppliance, type TestAppliance } from './testing/harness';

type Decision = 'allowed' | 'denied';
type Rule = Record<Role, Decision>;

const all: Rule = { admin: 'allowed', author: 'allowed', analyst: 'allowed', auditor: 'allowed' };
const adminOnly: Rule = {
  admin: 'allowed',
  author: 'denied',
  analyst: 'denied',
  auditor: 'denied',
};
const rule = (allowed: Role[]): Rule => ({
  admin: allowed.includes('admin') ? 'allowed' : 'denied',
  author: allowed.includes('author') ? 'allowed' : 'denied',
  analyst: allowed.includes('analyst') ? 'allowed' : 'denied',
  auditor: allowed.includes('auditor') ? 'allowed' : 'denied',
});

/**
 * Access rules of each API route, per role. The table is written by hand and
 * not derived from the route specs, so a change of access shows up here as a
 * reviewed diff. A mounted route missing from this table fails the test.
 */
const matrix: Record<string, Rule> = {
  'POST /auth/login': all,
  // Public; without OIDC_* settings both return 404 (OpenID Connect sign-in is off).
  'GET /auth/oidc/login': all,
  'GET /auth/oidc/callback': all,
  // Public; without LDAP_* settings it returns 404 (LDAP sign-in is off).
  'POST /auth/ldap/login': all,
  // Public; without SAML_* settings all three return 404 (SAML sign-in is off).
  'GET /auth/saml/login': all,
  'POST /auth/saml/acs': all,
  'GET /auth/saml/metadata': all,
  'POST /auth/mfa/verify': all,
  'POST /auth/mfa/totp/enroll': all,
  'POST /auth/mfa/totp/confirm': all,
  'POST /auth/mfa/webauthn/register/options': all,
  'POST /auth/mfa/webauthn/register/verify': all,
  'GET /auth/mfa/webauthn/credentials': all,
  'PATCH /auth/mfa/webauthn/credentials/:id': all,
  'DELETE /auth/mfa/webauthn/credentials/:id': all,
  // Public, but it needs the cookie of a sign-in that waits for its second factor. No client
  // here has one, so every role gets 401 and no role rule applies (webauthn.test.ts covers it).
  'POST /auth/mfa/webauthn/options': {} as Rule,
  'POST /auth/mfa/webauthn/verify': all,
  'POST /auth/mfa/webauthn/step-up/options': all,
  'POST /auth/mfa/webauthn/step-up/verify': all,
  'GET /auth/devices': all,
  // Every role gets 403 here: trusting a device needs a session that passed a second
  // factor, and none of these clients enrolled one (devices.test.ts covers the allowed case).
  'POST /auth/devices/:id/trust': rule([]),
  'DELETE /auth/devices/:id': all,
  'GET /auth/me': all,
  'POST /auth/password': all,
  'GET /auth/sessions': all,
  'DELETE /auth/sessions/:id': all,
  'POST /api-keys': all,
  'GET /api-keys': all,
  'DELETE /api-keys/:id': all,
  'POST /oauth/clients': adminOnly,
  'GET /oauth/clients': adminOnly,
  'POST /oauth/clients/:id/secret': adminOnly,
  'POST /oauth/clients/:id/disable': adminOnly,
  // Public; an empty body gets 400 invalid_request, which counts as allowed.
  'POST /oauth/token': all,
  'GET /oauth/jwks': all,
  'POST /oauth/user-tokens': all,
  'GET /users': adminOnly,
  'POST /users': adminOnly,
  'GET /users/:id': adminOnly,
  'PATCH /users/:id': adminOnly,
  // SCIM 2.0 provisioning; denials come back as SCIM errors (application/scim+json).
  'GET /scim/v2/ServiceProviderConfig': adminOnly,
  'GET /scim/v2/ResourceTypes': adminOnly,
  'GET /scim/v2/Schemas': adminOnly,
  'POST /scim/v2/Users': adminOnly,
  'GET /scim/v2/Users': adminOnly,
  'GET /scim/v2/Users/:id': adminOnly,
  'PUT /scim/v2/Users/:id': adminOnly,
  'PATCH /scim/v2/Users/:id': adminOnly,
  'DELETE /scim/v2/Users/:id': adminOnly,
  'POST /scim/v2/Groups': adminOnly,
  'GET /scim/v2/Groups': adminOnly,
  'GET /scim/v2/Groups/:id': adminOnly,
  'PUT /scim/v2/Groups/:id': adminOnly,
  'PATCH /scim/v2/Groups/:id': adminOnly,
  'DELETE /scim/v2/Groups/:id': adminOnly,
  'DELETE /users/:id/mfa': adminOnly,
  // Public; without SMTP_* settings both return 404 (recovery by email is off).
  'POST /auth/recovery': all,
  'POST /auth/recovery/complete': all,
  'DELETE /auth/mfa/totp': all,
  'GET /access/roles': adminOnly,
  'POST /access/roles': adminOnly,
  'GET /access/roles/:name': adminOnly,
  'PUT /access/roles/:name': adminOnly,
  'DELETE /access/roles/:name': adminOnly,
  'GET /access/grants': adminOnly,
  'POST /access/grants': adminOnly,
  'DELETE /access/grants/:id': adminOnly,
  'POST /access/grants/:id/renew': adminOnly,
  'GET /access/users/:id': adminOnly,
  'GET /access/me': all,
  'POST /access/delegations': all,
  'GET /access/delegations': all,
  'DELETE /access/delegations/:id': all,
  'GET /access/change-requests': adminOnly,
  'POST /access/change-requests/:id/approve': adminOnly,
  'POST /access/change-requests/:id/reject': adminOnly,
  // Any signed-in user reaches the route; the handler admits only BREAK_GLASS_ROLES.
  'POST /access/break-glass': all,
  'GET /access/break-glass': rule(['admin', 'analyst', 'auditor']),
  'POST /access/break-glass/:id/end': all,
  'POST /access/break-glass/:id/review': adminOnly,
  'POST /access/reviews': adminOnly,
  'GET /access/reviews': rule(['admin', 'analyst', 'auditor']),
  'GET /access/reviews/:id': rule(['admin', 'analyst', 'auditor']),
  'POST /access/reviews/:id/items/:itemId': adminOnly,
  'POST /access/reviews/:id/close': adminOnly,
  'GET /access/reviews/:id/report': rule(['admin', 'auditor']),
  'GET /audit/verify': rule(['admin', 'auditor']),
  'GET /audit/checkpoints': rule(['admin', 'auditor']),
  'GET /audit/checkpoints/:seq': rule(['admin', 'auditor']),
  'GET /folders': all,
  'POST /folders': rule(['admin', 'author']),
  'GET /prompts': rule(['admin', 'author', 'analyst']),
  'POST /prompts': rule(['admin', 'author']),
  'GET /prompts/:id': rule(['admin', 'author', 'analyst']),
  'GET /prompts/:id/versions': rule(['admin', 'author', 'analyst']),
  'GET /prompts/:id/versions/:number': rule(['admin', 'author', 'analyst']),
  'POST /prompts/:id/versions': rule(['admin', 'author']),
  'POST /prompts/:id/archive': rule(['admin', 'author']),
  'GET /keys': rule(['admin', 'auditor']),
  // Key rotation routes, as their specs declare them while that work is in progress.
  'GET /keys/master/versions': rule(['admin', 'auditor']),
  'GET /keys/rotations': rule(['admin', 'auditor']),
  'GET /keys/rotations/:id': rule(['admin', 'auditor']),
  'POST /keys/rotate': adminOnly,
  'POST /keys/rewrap': adminOnly,
  'PUT /keys/master/minimum-version': adminOnly,
  'POST /keys/rotations/:id/resume': adminOnly,
  'GET /projects': adminOnly,
  'GET /projects/keys': rule(['admin', 'auditor']),
  'POST /projects': adminOnly,
  'POST /projects/:id/key/revoke': adminOnly,
  'POST /projects/:id/key/restore': adminOnly,
  'POST /projects/:id/key/rotate': adminOnly,
  'PUT /projects/:id/key/minimum-version': adminOnly,
  'GET /alerts': rule(['admin', 'analyst', 'auditor']),
  'GET /alerts/:id': rule(['admin', 'analyst', 'auditor']),
  'GET /alerts/:id/events': rule(['admin', 'analyst', 'auditor']),
  'PATCH /alerts/:id': rule(['admin', 'analyst']),
  // Sent last for each role: it ends the session the other requests use.
  'POST /auth/logout': all,
};

/** Fills path parameters with valid ids that no record has: a UUID for `:id`, a large number otherwise. */
function concretePath(path: string): string {
  return path.replace(/:(\w+)/g, (_match, name: string) =>
    name === 'id' ? '00000000-0000-4000-8000-000000000000' : '999999',
  );
}

describe('authorisation matrix @integration', function () {
  this.timeout(120_000);
  let test: TestAppliance;
  let routes: string[];
  const clients = new Map<Role, ApiClient>();

  before(async function () {
    test = await startTestAppliance({ search: true });
    routes = test.appliance.routes.map((spec) => `${spec.method.toUpperCase()} ${spec.path}`);

    clients.set('admin', await test.admin());
    for (const role of ['author', 'analyst', 'auditor'] as const) {
      clients.set(role, (await test.userWithRole(role)).client);
    }
  });

  after(async function () {
    await test?.close();
  });

  it('covers exactly the mounted routes', function () {
    const missing = routes.filter((key) => !(key in matrix));
    assert.deepEqual(
      missing,
      [],
      `routes without a rule in the authorisation matrix: ${missing.join(', ')}; add them to appliance/authz-matrix.test.ts`,
    );

    const stale = Object.keys(matrix).filter((key) => !routes.includes(key));
    assert.deepEqual(stale, [], `rules for routes that are not mounted: ${stale.join(', ')}`);
  });

  it('allows and denies each route for each role as the table says', async function () {
    const ordered = [...routes].sort(
      (a, b) => Number(a === 'POST /auth/logout') - Number(b === 'POST /auth/logout'),
    );
    const mismatches: string[] = [];

    for (const [role, client] of clients) {
      for (const key of ordered) {
        const expected = matrix[key]?.[role];
        if (!expected) continue;

        const [method, path] = key.split(' ');
        const body = ['POST', 'PATCH', 'PUT'].includes(method) ? {} : undefined;
        const response = await client.request(method, concretePath(path), body);
        const problem = describeMismatch(expected, response);
        if (problem) mismatches.push(`${role} ${key}: ${problem}`);
      }
    }

    assert.deepEqual(mismatches, []);
  });
});

function describeMismatch(expected: Decision, response: ApiResponse): string | undefined {
  const body = response.body as { status?: number; type?: string } | undefined;
  if (expected === 'denied') {
    const contentType = String(response.headers['content-type']);
    const isProblem =
      (contentType.startsWith('application/problem+json') && body?.status === 403) ||
      // SCIM routes send their errors in SCIM's own format, with the status as a string.
      (contentType.startsWith('application/scim+json') && String(body?.status) === '403');
    return response.status === 403 && isProblem
      ? undefined
      : `expected a 403 problem, got ${response.status} ${JSON.stringify(body)}`;
  }
  return response.status === 401 || response.status === 403
    ? `expected access, got ${response.status} ${JSON.stringify(body)}`
    : undefined;
}
