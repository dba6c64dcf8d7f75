import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import type { Request } from 'express';
import type { Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { Database } from '../platform/database';
import { problems } from '../http/problem';
import type { Principal, RouteContext } from '../http/route';
import { decoyPasswordHash, verifyPassword } from './passwords';
import { LoginThrottle } from './login-throttle';
import { MfaChallenges } from './mfa-challenges';
import { RecoveryCodes } from './recovery-codes';
import { ApiKeyStore, apiKeyPrefix } from './api-keys';
import { assertCsrfHeader } from './csrf';
import { deviceCookieName } from './devices/devices';
import { signInGuardsOf } from './risk/sign-in-guards';
import { looksLikeJwt } from './oauth/access-tokens';
import { OAuthService } from './oauth/service';
import { defaultOAuthSettings, type OAuthSettings } from './oauth/settings';
import { SessionStore, defaultSessionPolicy, sessionCookieName } from './sessions';
import { TotpAuthenticators } from './totp';
import { UserDirectory, type User } from './users';

/** File, under the secrets directory, that holds the first admin's one-time password until it is changed. */
export const initialAdminPasswordFile = 'initial-admin-password';

/** Accounts, credentials, second factors and sessions. */
export class IdentityService {
  readonly users: UserDirectory;
  readonly sessions: SessionStore;
  readonly throttle: LoginThrottle;
  readonly totp: TotpAuthenticators;
  readonly recoveryCodes: RecoveryCodes;
  readonly mfaChallenges: MfaChallenges;
  readonly apiKeys: ApiKeyStore;
  readonly oauth: OAuthService;

  /** Without `keys`, TOTP enrolment and verification fail with 503 (hsm_unavailable). */
  constructor(
    private readonly database: Database,
    private readonly secretsDir: string,
    keys?: KeyProvider,
    options: {
      sessionLimit?: number;
      sessionIdleMinutes?: number;
      sessionAbsoluteHours?: number;
      oauth?: OAuthSettings;
    } = {},
  ) {
    this.users = new UserDirectory(database);
    this.sessions = new SessionStore(database, {
      ...defaultSessionPolicy,
      maxPerUser: options.sessionLimit ?? defaultSessionPolicy.maxPerUser,
      idleTimeoutSeconds: minutesOr(
        options.sessionIdleMinutes,
        defaultSessionPolicy.idleTimeoutSeconds,
      ),
      absoluteTimeoutSeconds: minutesOr(
        options.sessionAbsoluteHours && options.sessionAbsoluteHours * 60,
        defaultSessionPolicy.absoluteTimeoutSeconds,
      ),
    });
    this.apiKeys = new ApiKeyStore(database);
    this.oauth = new OAuthService(
      database,
      keys,
      this.users,
      options.oauth ?? defaultOAuthSettings,
    );
    this.throttle = new LoginThrottle();
    this.totp = new TotpAuthenticators(database, keys);
    this.recoveryCodes = new RecoveryCodes(database);
    this.mfaChallenges = new MfaChallenges(database);
  }

  /** Returns the user when the password matches an enabled account; takes as long for an unknown name. */
  async verifyCredentials(username: string, password: string): Promise<User | undefined> {
    const found = await this.users.findWithHash(username);
    if (!found) {
      await verifyPassword(await decoyPasswordHash(), password);
      return undefined;
    }

    const matches = await verifyPassword(found.passwordHash, password);
    return matches && !found.user.disabled ? found.user : undefined;
  }

  /**
   * Resolves a request to its user: an `Authorization: Bearer` JWT access
   * token or `pba_...` API key when the header is present, else the session
   * cookie. A bad token or key is a 401 problem, never a fall-back to the
   * cookie; a cookie-authenticated write without the CSRF header is a 403 problem.
   */
  async authenticate(request: Request): Promise<Principal | undefined> {
    const authorization = request.get('authorization');
    const bearer = authorization && /^Bearer (\S+)$/.exec(authorization)?.[1];
    if (bearer && looksLikeJwt(bearer)) return this.oauth.authenticateBearer(bearer);
    if (authorization !== undefined) return this.authenticateApiKey(authorization, request);

    const token = request.cookies?.[sessionCookieName] as string | undefined;
    if (!token || token.length > 128) return undefined;

    const userId = await this.sessions.resolve(token);
    if (!userId) return undefined;

    const user = await this.users.findById(userId);
    if (!user || user.disabled) return undefined;

    assertCsrfHeader(request);
    return {
      userId: user.id,
      username: user.username,
      role: user.role,
      mustChangePassword: user.mustChangePassword,
      sessionToken: token,
      ...(await this.sessionAttributes(request, token, user.id)),
    };
  }

  /**
   * Whether the session passed a second factor and the browser is a device
   * its owner trusts: attributes that grant conditions can require.
   */
  private async sessionAttributes(
    request: Request,
    token: string,
    userId: string,
  ): Promise<{ mfaVerified: boolean; deviceTrusted: boolean }> {
    const guards = signInGuardsOf(this);
    if (!guards) return { mfaVerified: false, deviceTrusted: false };

    const deviceCookie = request.cookies?.[deviceCookieName] as string | undefined;
    const [method, device] = await Promise.all([
      guards.sessionFactors.methodOf(token),
      guards.devices.identify(deviceCookie, userId),
    ]);
    return {
      mfaVerified: method !== undefined,
      deviceTrusted: await guards.devices.isTrusted(device),
    };
  }

  /** Resolves an API key to its owner, cutting the key's permissions down to what the owner's role grants now. */
  private async authenticateApiKey(authorization: string, request: Request): Promise<Principal> {
    const rejected = problems.unauthenticated(
      `The Authorization header must be "Bearer ${apiKeyPrefix}..." with a live API key; this one is malformed, unknown, revoked or expired.`,
    );
    const match = /^Bearer (\S+)$/.exec(authorization);
    if (!match) throw rejected;

    const key = await this.apiKeys.resolve(match[1], request.socket.remoteAddress ?? 'unknown');
    if (!key) throw rejected;

    const user = await this.users.findById(key.userId);
    if (!user || user.disabled) throw rejected;
    return {
      userId: user.id,
      username: user.username,
      role: user.role,
      mustChangePassword: user.mustChangePassword,
      apiKey: {
        id: key.id,
        // The route pipeline also checks the owner's current grants, so a key never
        // outlives a role change.
        permissions: key.permissions,
        projectIds: key.projectIds,
      },
    };
  }

  /**
   * Changes a user's role or disabled flag and ends all of that user's sessions,
   * so the change applies at once. Returns the account before and after.
   */
  async updateUser(
    id: string,
    change: { role?: User['role']; disabled?: boolean },
    transaction: Transaction,
  ): Promise<{ before: User; after: User }> {
    const before = await this.users.findById(id, transaction);
    if (!before) throw problems.notFound(`User ${id}`);

    const after = await this.users.update(id, change, transaction);
    await this.sessions.closeAllFor(id, transaction);
    return { before, after };
  }

  /** Replaces a password after checking the current one, and ends the user's other sessions. */
  async changePassword(
    principal: Principal,
    currentPassword: string,
    newPassword: string,
    commit: RouteContext<unknown, unknown, unknown>['commit'],
  ): Promise<void> {
    const hash = await this.users.passwordHashOf(principal.userId);
    if (!(await verifyPassword(hash, currentPassword))) {
      throw problems.invalidRequest('currentPassword: does not match the current password', [
        { field: 'currentPassword', message: 'does not match the current password' },
      ]);
    }
    if (currentPassword === newPassword) {
      throw problems.invalidRequest('newPassword: must differ from the current password', [
        { field: 'newPassword', message: 'must differ from the current password' },
      ]);
    }

    await commit(async (transaction: Transaction) => {
      await this.users.setPassword(principal.userId, newPassword, transaction);
      await this.sessions.closeAllFor(principal.userId, transaction, principal.sessionToken);
    });
    fs.rmSync(path.join(this.secretsDir, initialAdminPasswordFile), { force: true });
  }

  /**
   * Creates the first admin with a one-time password when there are no users,
   * and stores that password in a 0600 file; it must be changed at first sign-in.
   */
  async bootstrapFirstAdmin(): Promise<{ created: boolean; passwordFile: string }> {
    const passwordFile = path.join(this.secretsDir, initialAdminPasswordFile);
    if ((await this.users.count()) > 0) return { created: false, passwordFile };

    const oneTimePassword = crypto.randomBytes(18).toString('base64url');
    fs.mkdirSync(this.secretsDir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(passwordFile, `${oneTimePassword}\n`, { mode: 0o600 });

    await this.database.write((transaction) =>
      this.users.create(
        { username: 'admin', password: oneTimePassword, role: 'admin', mustChangePassword: true },
        transaction,
      ),
    );
    return { created: true, passwordFile };
  }
}

/** Converts a setting in minutes to seconds, or keeps the default when it is not set. */
function minutesOr(minutes: number | undefined, fallbackSeconds: number): number {
  return minutes === undefined ? fallbackSeconds : minutes * 60;
}
