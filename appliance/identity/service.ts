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
import { SessionStore, sessionCookieName } from './sessions';
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

  /** Without `keys`, TOTP enrolment and verification fail with 503 (hsm_unavailable). */
  constructor(
    private readonly database: Database,
    private readonly secretsDir: string,
    keys?: KeyProvider,
  ) {
    this.users = new UserDirectory(database);
    this.sessions = new SessionStore(database);
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

  /** Resolves the session cookie of a request to its user. */
  async authenticate(request: Request): Promise<Principal | undefined> {
    const token = request.cookies?.[sessionCookieName] as string | undefined;
    if (!token || token.length > 128) return undefined;

    const userId = await this.sessions.resolve(token);
    if (!userId) return undefined;

    const user = await this.users.findById(userId);
    if (!user || user.disabled) return undefined;
    return {
      userId: user.id,
      username: user.username,
      role: user.role,
      mustChangePassword: user.mustChangePassword,
      sessionToken: token,
    };
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
