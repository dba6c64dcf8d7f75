import { findBursts } from './bursts';
import { formatDuration } from './duration';
import type { DetectionRule, RuleBurst } from './rule';

export interface BruteForceSettings {
  /** Failed logins from one source address within the window that raise an alert. */
  threshold: number;
  windowSeconds: number;
}

/**
 * `auth.brute_force`: at least `threshold` failed logins from one
 * `source.ip` within any window of `windowSeconds`. It counts sshd failures
 * from collected auth logs and the appliance's own failed `auth.login`
 * audit records alike, since both carry `event.category: authentication`.
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
