/**
 * Splits a syslog line into its header (time, host, tag) and message.
 *
 * Two header forms are accepted: the classic BSD form of RFC 3164
 * (`Dec 10 06:55:46 host sshd[24200]: text`, no year, local time) and the
 * RFC 3339 form that rsyslog writes with its high-precision template
 * (`2024-12-10T06:55:46.123456+01:00 host sshd[24200]: text`). A leading
 * `<PRI>` is allowed on both.
 */

export interface SyslogTimeOptions {
  /** Year of year-less timestamps; when absent it is inferred from `now`. */
  year?: number;
  /** IANA time zone that year-less timestamps were written in. Default UTC. */
  timeZone?: string;
  /** Reference time for the year rule. Default: the current time. */
  now?: Date;
}

export interface SyslogLine {
  timestamp: Date;
  /** True when the year came from the rule or the `year` option, not from the line. */
  yearInferred: boolean;
  hostname: string;
  /** Program name from the tag, without a `(pam_unix)` style suffix. */
  program?: string;
  /** PAM module named in a tag such as `sshd(pam_unix)`. */
  tagModule?: string;
  pid?: number;
  priority?: number;
  message: string;
}

export type SyslogParseResult = { ok: true; line: SyslogLine } | { ok: false; reason: string };

const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const bsdHeader =
  /^(?:<(\d{1,3})>)?([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\S+) ?(.*)$/s;
const isoHeader =
  /^(?:<(\d{1,3})>)?(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})) (\S+) ?(.*)$/s;

// RFC 3164 TAG: printable characters up to `[pid]` or `:`. Parentheses are
// allowed because old pam_unix builds log as `sshd(pam_unix)[123]:`.
const tagPattern = /^([^\s[\]:]{1,64})(?:\[(\d{1,10})\])?: ?(.*)$/s;
const tagModulePattern = /^(.+?)\((pam_\w+)\)$/;

const dayMs = 24 * 60 * 60 * 1000;

/** Parses the syslog header of one line; returns a reason when the line is not syslog. */
export function parseSyslogLine(raw: string, options: SyslogTimeOptions = {}): SyslogParseResult {
  if (raw.trim() === '') return { ok: false, reason: 'empty line' };

  const iso = isoHeader.exec(raw);
  if (iso) {
    const timestamp = new Date(iso[2]!);
    if (Number.isNaN(timestamp.getTime()))
      return { ok: false, reason: `invalid timestamp ${iso[2]}` };
    return withTag(raw, iso[1], timestamp, false, iso[3]!, iso[4]!);
  }

  const bsd = bsdHeader.exec(raw);
  if (!bsd)
    return {
      ok: false,
      reason: 'not a syslog line: expected "Mmm dd hh:mm:ss host" or an RFC 3339 timestamp',
    };

  const [, priority, monthName, day, hour, minute, second, hostname, rest] = bsd;
  const month = months.indexOf(monthName!);
  if (month < 0) return { ok: false, reason: `invalid month ${JSON.stringify(monthName)}` };

  const fields = {
    month,
    day: Number(day),
    hour: Number(hour),
    minute: Number(minute),
    second: Number(second),
  };
  if (
    fields.day < 1 ||
    fields.day > 31 ||
    fields.hour > 23 ||
    fields.minute > 59 ||
    fields.second > 60
  ) {
    return { ok: false, reason: `invalid time ${monthName} ${day} ${hour}:${minute}:${second}` };
  }

  const resolved = resolveYearlessTime(fields, options);
  if (!resolved.ok) return resolved;
  return withTag(raw, priority, resolved.timestamp, true, hostname!, rest!);
}

function withTag(
  raw: string,
  priority: string | undefined,
  timestamp: Date,
  yearInferred: boolean,
  hostname: string,
  rest: string,
): SyslogParseResult {
  const line: SyslogLine = { timestamp, yearInferred, hostname, message: rest };

  if (priority !== undefined) {
    const value = Number(priority);
    if (value > 191) return { ok: false, reason: `invalid syslog priority <${priority}>` };
    line.priority = value;
  }

  const tag = tagPattern.exec(rest);
  if (tag) {
    const module = tagModulePattern.exec(tag[1]!);
    line.program = module ? module[1] : tag[1];
    if (module) line.tagModule = module[2];
    if (tag[2] !== undefined) line.pid = Number(tag[2]);
    line.message = tag[3]!;
  }

  // A line that is only a header carries nothing to index.
  if (line.message.trim() === '' && !tag)
    return { ok: false, reason: `syslog line without a message: ${raw.slice(0, 40)}` };
  return { ok: true, line };
}

interface WallClock {
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/**
 * Resolves a year-less wall-clock time to an instant. The year is
 * `options.year` when given; otherwise the current year in `timeZone`,
 * or the year before when the current year puts the event more than one
 * day after `now` (a December line read in January). A Feb 29 that does not
 * exist in the inferred year goes back to the latest leap year.
 */
export function resolveYearlessTime(
  clock: WallClock,
  options: SyslogTimeOptions = {},
): { ok: true; timestamp: Date } | { ok: false; reason: string } {
  const timeZone = options.timeZone ?? 'UTC';
  const now = options.now ?? new Date();

  if (options.year !== undefined) {
    if (!dateExists(options.year, clock.month, clock.day)) {
      return {
        ok: false,
        reason: `invalid date ${months[clock.month]} ${clock.day} in year ${options.year}`,
      };
    }
    return { ok: true, timestamp: zonedTimeToUtc({ year: options.year, ...clock }, timeZone) };
  }

  let year = zonedYear(now, timeZone);
  if (dateExists(year, clock.month, clock.day)) {
    const candidate = zonedTimeToUtc({ year, ...clock }, timeZone);
    if (candidate.getTime() - now.getTime() <= dayMs) return { ok: true, timestamp: candidate };
  }

  year -= 1;
  // Only Feb 29 can be missing; leap years are at most 8 years apart.
  for (let step = 0; step < 8 && !dateExists(year, clock.month, clock.day); step++) year -= 1;
  if (!dateExists(year, clock.month, clock.day)) {
    return { ok: false, reason: `invalid date ${months[clock.month]} ${clock.day}` };
  }
  return { ok: true, timestamp: zonedTimeToUtc({ year, ...clock }, timeZone) };
}

function dateExists(year: number, month: number, day: number): boolean {
  const date = new Date(Date.UTC(year, month, day));
  return date.getUTCMonth() === month && date.getUTCDate() === day;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    // Throws RangeError for an unknown zone name, which is what a caller wants.
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

function zonedParts(instant: Date, timeZone: string): Record<string, number> {
  const parts: Record<string, number> = {};
  for (const part of formatterFor(timeZone).formatToParts(instant)) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  return parts;
}

function zonedYear(instant: Date, timeZone: string): number {
  return zonedParts(instant, timeZone).year!;
}

/** Offset of `timeZone` from UTC at `instant`, in milliseconds. */
function zoneOffsetMs(instant: Date, timeZone: string): number {
  const p = zonedParts(instant, timeZone);
  const asUtc = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
  return asUtc - Math.floor(instant.getTime() / 1000) * 1000;
}

/**
 * Converts a wall-clock time in `timeZone` to an instant. A time that falls
 * in a daylight-saving gap or overlap resolves to one of the two candidate
 * offsets, as most syslog readers do.
 */
export function zonedTimeToUtc(clock: WallClock & { year: number }, timeZone: string): Date {
  const asUtc = Date.UTC(
    clock.year,
    clock.month,
    clock.day,
    clock.hour,
    clock.minute,
    Math.min(clock.second, 59),
  );
  if (timeZone === 'UTC') return new Date(asUtc);

  const firstGuess = asUtc - zoneOffsetMs(new Date(asUtc), timeZone);
  const corrected = asUtc - zoneOffsetMs(new Date(firstGuess), timeZone);
  return new Date(corrected);
}
