import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { mfaChallengeCookieName } from '../identity/mfa-challenges';
import type { ApiClient, ApiResponse } from './api-client';

/** Computes a TOTP code with oathtool (RFC 6238, SHA-1, 6 digits, 30 s), `offsetSeconds` from now. */
export function oathtoolCode(secret: string, offsetSeconds = 0): string {
  const at = Math.floor(Date.now() / 1000) + offsetSeconds;
  return execFileSync('oathtool', ['--totp', '-b', '-N', `@${at}`, secret], {
    encoding: 'utf8',
  }).trim();
}

/** Enrols and confirms TOTP for a signed-in client with an oathtool code; returns the secret. */
export async function activateTotp(client: ApiClient): Promise<string> {
  const enrolment = await client.post('/auth/mfa/totp/enroll');
  assert.equal(enrolment.status, 201);
  const confirmed = await client.post('/auth/mfa/totp/confirm', {
    code: oathtoolCode(enrolment.body.secret),
  });
  assert.equal(confirmed.status, 200);
  return enrolment.body.secret;
}

/** Returns the id of a user from the admin's user list. */
export async function userIdOf(admin: ApiClient, username: string): Promise<string> {
  const list = await admin.get('/users');
  const user = list.body.items.find((item: { username: string }) => item.username === username);
  assert.ok(user, `user ${username} is listed`);
  return user.id;
}

/** Returns the `name=value` of the MFA challenge cookie a password step set. */
export function challengeCookie(response: ApiResponse): string {
  const lines = [response.headers['set-cookie'] ?? []].flat();
  const line = lines.find((candidate) => candidate.startsWith(`${mfaChallengeCookieName}=`));
  assert.ok(line, 'the login response sets the MFA challenge cookie');
  return line.split(';')[0];
}

/** Sends the password step of a user with a second factor; returns the challenge cookie. */
export async function passwordStep(client: ApiClient, username: string, password: string) {
  const login = await client.post('/auth/login', { username, password });
  assert.equal(login.status, 200);
  assert.equal(login.body.mfaRequired, true);
  return challengeCookie(login);
}

/** Signs a TOTP user in with password and an oathtool code; the client keeps the session. */
export async function signInWithTotp(
  client: ApiClient,
  account: { username: string; password: string; secret: string },
): Promise<void> {
  const cookie = await passwordStep(client, account.username, account.password);
  // The next step's code: enrolment may have used this step's, and a used code is refused.
  const verified = await client.request(
    'POST',
    '/auth/mfa/verify',
    { code: oathtoolCode(account.secret, 30) },
    { cookie },
  );
  assert.equal(verified.status, 200, JSON.stringify(verified.body));
}
