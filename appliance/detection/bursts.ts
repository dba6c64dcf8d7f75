/**
 * Sliding-window burst search over event times. A window of length W ending
 * at event j contains the events with time in (t_j - W, t_j]. Every window that
 * contains at least `minimumCount` events marks its events as triggering, and
 * marked runs that share an event merge into one burst.
 */
export interface Burst {
  /** Index of the first triggering event in the sorted input. */
  start: number;
  /** Index of the last triggering event (inclusive). */
  end: number;
  /** Event time of the first triggering event, in epoch milliseconds. */
  firstSeen: number;
  /** Event time of the last triggering event, in epoch milliseconds. */
  lastSeen: number;
  /** Number of triggering events: end - start + 1. */
  count: number;
  /** Maximum number of events in any one window within the burst. */
  peak: number;
}

/** Finds the bursts in `times` (epoch milliseconds, sorted ascending). */
export function findBursts(
  times: readonly number[],
  windowMs: number,
  minimumCount: number,
): Burst[] {
  const bursts: Burst[] = [];
  let current: Burst | undefined;
  let windowStart = 0;

  for (let end = 0; end < times.length; end += 1) {
    while (times[end] - times[windowStart] >= windowMs) windowStart += 1;

    const inWindow = end - windowStart + 1;
    if (inWindow < minimumCount) continue;

    if (current && windowStart <= current.end) {
      current.end = end;
      current.peak = Math.max(current.peak, inWindow);
    } else {
      current = { start: windowStart, end, firstSeen: 0, lastSeen: 0, count: 0, peak: inWindow };
      bursts.push(current);
    }
  }

  for (const burst of bursts) {
    burst.firstSeen = times[burst.start];
    burst.lastSeen = times[burst.end];
    burst.count = burst.end - burst.start + 1;
  }
  return bursts;
}
