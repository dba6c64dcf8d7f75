import { findBursts } from './bursts';
import { formatDuration } from './duration';
import { countEntityEvents } from './event-search';
import type { DetectionRule, RuleBurst, RuleContext } from './rule';

export interface MassReadSettings {
  /** Reads within the window that always stay below an alert, whatever the user's baseline. */
  threshold: number;
  windowSeconds: number;
  /** How many times the user's usual reads per window a window must exceed. */
  baselineFactor: number;
}

const baselineDays = 7;
const baselineMs = baselineDays * 24 * 60 * 60 * 1000;

/**
 * `vault.mass_read`: one `user.name` reading more prompts within a window
 * than max(threshold, baselineFactor × usual), where "usual" is that user's
 * mean reads per window over the 7 days of event time before the burst. A
 * user with less history than that still has the reads divided over 7 days.
 * Severity is medium, and high once a window contains twice that limit.
 *
 * NOTE: it counts successful `vault.prompt.read` events, not distinct
 * prompts, so reading one prompt many times counts each time.
 */
export function massReadRule(settings: MassReadSettings): DetectionRule {
  const windowMs = settings.windowSeconds * 1000;
  const rule: DetectionRule = {
    id: 'vault.mass_read',
    entityField: 'user.name',
    windowMs,
    criteria: [
      { term: { 'event.action': 'vault.prompt.read' } },
      { term: { 'event.outcome': 'success' } },
    ],

    async evaluate(userName, times, context) {
      const found: RuleBurst[] = [];

      // Every burst above the user's own limit lies inside a burst above the
      // fixed threshold, so those candidates are searched again with the limit.
      for (const candidate of findBursts(times, windowMs, settings.threshold + 1)) {
        const usual = await usualReadsPerWindow(rule, context, userName, candidate.firstSeen);
        const limit = Math.max(settings.threshold, settings.baselineFactor * usual);
        const slice = times.slice(candidate.start, candidate.end + 1);

        for (const burst of findBursts(slice, windowMs, Math.floor(limit) + 1)) {
          found.push({
            ...burst,
            start: burst.start + candidate.start,
            end: burst.end + candidate.start,
            severity: burst.peak >= 2 * limit ? 'high' : 'medium',
            summarize: (eventCount, firstSeen, lastSeen) =>
              `${userName} read ${eventCount} prompts in ${formatDuration(Date.parse(lastSeen) - Date.parse(firstSeen))}, ` +
              `more than the limit of ${Math.floor(limit)} per ${formatDuration(windowMs)}`,
          });
        }
      }

      return found;
    },
  };
  return rule;
}

/** Mean reads per window over the baseline days before `before` (epoch milliseconds). */
async function usualReadsPerWindow(
  rule: DetectionRule,
  context: RuleContext,
  userName: string,
  before: number,
): Promise<number> {
  const reads = await countEntityEvents(
    context.engine,
    context.index,
    rule.criteria,
    rule.entityField,
    userName,
    before - baselineMs,
    before,
  );
  return (reads * rule.windowMs) / baselineMs;
}
