import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';

/** Limits on recovery requests, counted per account and per source IP address over `windowSeconds`. */
export interface RecoveryThrottlePolicy {
  accountRequests: number;
  ipRequests: number;
  windowSeconds: number;
}

/** Default limits: a user rarely needs more than a few links, and one address rarely serves many users. */
export const defaultRecoveryThrottlePolicy: RecoveryThrottlePolicy = {
  accountRequests: 3,
  ipRequests: 20,
  windowSeconds: 15 * 60,
};

/**
 * Counts recovery requests. Every request counts, whether or not the account
 * exists, so the counts reveal nothing about which accounts are real.
 *
 * NOTE: counters live in process memory, like the sign-in throttle; a restart clears them.
 */
export class RecoveryThrottle {
  private readonly accounts: RateLimiterMemory;
  private readonly addresses: RateLimiterMemory;

  constructor(policy: RecoveryThrottlePolicy = defaultRecoveryThrottlePolicy) {
    this.accounts = new RateLimiterMemory({
      keyPrefix: 'recovery-account',
      points: policy.accountRequests,
      duration: policy.windowSeconds,
    });
    this.addresses = new RateLimiterMemory({
      keyPrefix: 'recovery-ip',
      points: policy.ipRequests,
      duration: policy.windowSeconds,
    });
  }

  /** Counts a request from `sourceIp`; returns the seconds to wait when the address is over its limit. */
  async consumeAddress(sourceIp: string): Promise<number | undefined> {
    return consume(this.addresses, sourceIp);
  }

  /** Counts a request for `accountKey`; returns the seconds to wait when the account is over its limit. */
  async consumeAccount(accountKey: string): Promise<number | undefined> {
    return consume(this.accounts, accountKey);
  }
}

async function consume(limiter: RateLimiterMemory, key: string): Promise<number | undefined> {
  try {
    await limiter.consume(key);
    return undefined;
  } catch (error) {
    if (error instanceof RateLimiterRes) return Math.max(1, Math.ceil(error.msBeforeNext / 1000));
    throw error;
  }
}
