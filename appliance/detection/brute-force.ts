import { findBursts } from './bursts';
import { formatDuration } from './duration';
import type { DetectionRule, RuleBurst } from './rule';

export interface BruteForceSettings {
  /** Failed logins from one source address within the window that raise an alert. */
  threshold: number;
  windowSeconds: number;
}

/**
 * Event actions that stand for one password or key attempt each: sshd's
 * "Failed password" / "Failed publickey" lines and the appliance's own
 * sign-in and MFA steps. sshd logs one attempt on several lines (an
 * "Invalid user" notice, a PAM "authentication failure", the "Failed
 * password" line), and the appliance records failed session checks, so
 * counting every failed authentication event would count one guess two or
 * three times and turn page loads into guesses.
 */
export const loginAttemptActions = ['ssh_login', 'auth.login', 'auth.mfa.verify'];

/**
 * `auth.brute_force`: at least `threshold` failed login attempts from one
 * `source.ip` within any window of `windowSeconds`, counting sshd failures
 * from collected auth logs and the appliance's own failed sign-ins alike.
 * Severity is high, and critical once a window contains 10 times the threshold.
 */
export function bruteForceRule(settings: BruteForceSettings): DetectionRule {
  const windowMs = settings.windowSeconds * 1000;

  return {
    id: 'auth.brute_force',
    entityField: 'source.ip',
    windowMs,
    criteria: [
      { term: { 'event.category': 'authentication' } },
      { terms: { 'event.action': loginAttemptActions } },
      { term: { 'event.outcome': 'failure' } },
    ],

    async evaluate(sourceIp, times) {
      return findBursts(times, windowMs, settings.threshold).map((burst): RuleBurst => ({
        ...burst,
        severity: burst.peak >= settings.threshold * 10 ? 'critical' : 'high',
        summarize: (eventCount, firstSeen, lastSeen) =>
          `${eventCount} failed logins from ${sourceIp} in ${formatDuration(Date.parse(lastSeen) - Date.parse(firstSeen))}`,
      }));
    },
  };
}
