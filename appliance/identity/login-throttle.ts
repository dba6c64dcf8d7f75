import { RateLimiterMemory } from 'rate-limiter-flexible';

import { ProblemError } from '../http/problem';
import { normaliseUsername } from './users';

/** Failure limits for sign-in, counted per account name and per source IP address. */
export interface LoginThrottlePolicy {
  /** Failed attempts on one account name within `windowSeconds` that lock it. */
  accountFailures: number;
  /** Failed attempts from one source IP address within `windowSeconds` that throttle it. */
  ipFailures: number;
  windowSeconds: number;
  /** How long a locked account or throttled address stays rejected, in seconds. */
  lockSeconds: number;
}

export const defaultLoginThrottlePolicy: LoginThrottlePolicy = {
  accountFailures: 5,
  ipFailures: 20,
  windowSeconds: 15 * 60,
  lockSeconds: 15 * 60,
};

/** A rejected sign-in attempt. The route copies `retryAfterSeconds` into the Retry-After header. */
export class LoginThrottledError extends ProblemError {
  constructor(
    code: 'account_locked' | 'rate_limited',
    readonly retryAfterSeconds: number,
  ) {
    super(
      429,
      code,
      code === 'account_locked' ? 'Account locked' : 'Too many sign-in attempts',
      code === 'account_locked'
        ? `Too many failed sign-ins for this username; try again in ${retryAfterSeconds} seconds or ask an admin.`
        : `Too many failed sign-ins from this address; try again in ${retryAfterSeconds} seconds.`,
    );
  }
}

/**
 * Counts failed sign-ins and rejects attempts past the limits. Accounts are
 * keyed by the normalised name whether or not the user exists, so a locked
 * response does not reveal which names are real.
 *
 * NOTE: counters live in process memory (RateLimiterMemory), which suits the
 * single-process appliance; a restart clears them, and several processes
 * would each count separately.
 */
export class LoginThrottle {
  private readonly accounts: RateLimiterMemory;
  private readonly addresses: RateLimiterMemory;

  constructor(private readonly policy: LoginThrottlePolicy = defaultLoginThrottlePolicy) {
    this.accounts = new RateLimiterMemory({
      keyPrefix: 'login-account',
      points: policy.accountFailures,
      duration: policy.windowSeconds,
    });
    this.addresses = new RateLimiterMemory({
      keyPrefix: 'login-ip',
      points: policy.ipFailures,
      duration: policy.windowSeconds,
    });
  }

  /** Throws LoginThrottledError when the address or the account is over its limit; the address is checked first. */
  async assertAllowed(username: string, sourceIp: string): Promise<void> {
    const address = await this.addresses.get(sourceIp);
    if (address && address.consumedPoints >= this.policy.ipFailures) {
      throw new LoginThrottledError('rate_limited', secondsOf(address.msBeforeNext));
    }

    const account = await this.accounts.get(normaliseUsername(username));
    if (account && account.consumedPoints >= this.policy.accountFailures) {
      throw new LoginThrottledError('account_locked', secondsOf(account.msBeforeNext));
    }
  }

  /** Counts one failed attempt (wrong password or second factor) and starts a lock when a limit is reached. */
  async recordFailure(username: string, sourceIp: string): Promise<void> {
    const accountKey = normaliseUsername(username);
    const account = await this.accounts.penalty(accountKey, 1);
    if (account.consumedPoints >= this.policy.accountFailures) {
      await this.accounts.block(accountKey, this.policy.lockSeconds);
    }

    const address = await this.addresses.penalty(sourceIp, 1);
    if (address.consumedPoints >= this.policy.ipFailures) {
      await this.addresses.block(sourceIp, this.policy.lockSeconds);
    }
  }

  /** Clears the account's failure count after a complete sign-in, but keeps the address count. */
  async recordSuccess(username: string): Promise<void> {
    await this.accounts.delete(normaliseUsername(username));
  }
}

function secondsOf(milliseconds: number): number {
  return Math.max(1, Math.ceil(milliseconds / 1000));
}
