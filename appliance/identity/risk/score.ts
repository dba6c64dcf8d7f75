import type { RiskSettings } from './settings';

export type RiskBand = 'low' | 'medium' | 'high';

/** Input of the score: this attempt and the user's earlier sign-ins. */
export interface RiskInput {
  /** True when the browser sent a live device cookie of this user. */
  knownDevice: boolean;
  sourceIp: string;
  now: Date;
  /** Successful sign-ins inside the history window, any order. */
  successes: { sourceIp: string; occurredAt: Date }[];
  /** Failed passwords inside the failure window. */
  recentFailures: number;
}

export interface RiskAssessment {
  score: number;
  band: RiskBand;
  /** Signal names with their weights, such as `unknown_device+25`; safe for the audit record. */
  reasons: string[];
}

/**
 * Scores a password-verified sign-in. The new-IP signal needs at least one
 * earlier success and the hour signal `minHistoryForHour` of them, so a first
 * sign-in is judged by its device and failures alone.
 */
export function scoreSignIn(input: RiskInput, settings: RiskSettings): RiskAssessment {
  const signals: [string, number][] = [];

  if (!input.knownDevice) signals.push(['unknown_device', settings.unknownDevice]);

  const seenIps = new Set(input.successes.map((success) => success.sourceIp));
  if (input.successes.length > 0 && !seenIps.has(input.sourceIp))
    signals.push(['new_source_ip', settings.newSourceIp]);

  if (input.successes.length >= settings.minHistoryForHour && isUnusualHour(input, settings))
    signals.push(['unusual_hour', settings.unusualHour]);

  if (input.recentFailures > 0) {
    const weight = Math.min(
      input.recentFailures * settings.recentFailure,
      settings.maxFailureWeight,
    );
    signals.push([`recent_failures=${input.recentFailures}`, weight]);
  }

  const present = signals.filter(([, weight]) => weight > 0);
  const score = present.reduce((sum, [, weight]) => sum + weight, 0);
  return {
    score,
    band: bandOf(score, settings),
    reasons: present.map(([name, weight]) => `${name}+${weight}`),
  };
}

export function bandOf(score: number, settings: RiskSettings): RiskBand {
  if (score >= settings.highThreshold) return 'high';
  if (score >= settings.mediumThreshold) return 'medium';
  return 'low';
}

/** True when no earlier success lies within `hourWindow` hours (UTC, wrapping at midnight) of now. */
function isUnusualHour(input: RiskInput, settings: RiskSettings): boolean {
  const hour = input.now.getUTCHours();
  return !input.successes.some((success) => {
    const difference = Math.abs(success.occurredAt.getUTCHours() - hour);
    return Math.min(difference, 24 - difference) <= settings.hourWindow;
  });
}
