import net from 'node:net';

import { z } from 'zod';

import { classifications, type Classification } from './scope';

const weekdays = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
type Weekday = (typeof weekdays)[number];

const clockTime = z
  .string()
  .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be a 24-hour time such as 08:00');

const cidr = z.string().refine(parseCidr, {
  message: 'must be an address range such as 10.0.0.0/8 or 2001:db8::/32',
});

const timeZone = z.string().refine(isTimeZone, {
  message: 'must be an IANA time zone such as UTC or Europe/Berlin',
});

/**
 * Attribute conditions a grant can carry; all given conditions must hold.
 * `schedule` windows may wrap midnight (from 22:00 to 06:00).
 */
export const conditionsSchema = z
  .object({
    sourceIps: z.array(cidr).min(1).max(64).optional(),
    schedule: z
      .object({
        days: z.array(z.enum(weekdays)).min(1).max(7).optional(),
        from: clockTime,
        to: clockTime,
        timeZone: timeZone.default('UTC'),
      })
      .strict()
      .optional(),
    requireMfa: z.boolean().optional(),
    requireTrustedDevice: z.boolean().optional(),
    maxClassification: z.enum(classifications).optional(),
  })
  .strict();

export type Conditions = z.infer<typeof conditionsSchema>;

/** The request's attributes that conditions test. */
export interface RequestAttributes {
  sourceIp: string;
  at: Date;
  mfaVerified: boolean;
  deviceTrusted: boolean;
  /** Set only when the decision is about one resource. */
  classification?: Classification;
}

/**
 * Returns the first condition that fails, as a sentence fragment for the
 * 403 detail, or undefined when all hold. A classification limit is checked
 * only when the resource's label is known; routes that list resources check
 * it per item.
 */
export function failedCondition(
  conditions: Conditions | undefined,
  attributes: RequestAttributes,
): string | undefined {
  if (!conditions) return undefined;

  if (conditions.sourceIps && !inRanges(attributes.sourceIp, conditions.sourceIps))
    return `it applies only from ${conditions.sourceIps.join(', ')}`;

  if (conditions.schedule && !inSchedule(attributes.at, conditions.schedule)) {
    const { from, to, timeZone, days } = conditions.schedule;
    return `it applies only ${days ? `on ${days.join(', ')} ` : ''}from ${from} to ${to} ${timeZone}`;
  }

  if (conditions.requireMfa && !attributes.mfaVerified)
    return 'it needs a session that passed multi-factor sign-in';

  if (conditions.requireTrustedDevice && !attributes.deviceTrusted)
    return 'it needs a trusted device';

  if (
    conditions.maxClassification &&
    attributes.classification &&
    rank(attributes.classification) > rank(conditions.maxClassification)
  )
    return `it reaches data up to "${conditions.maxClassification}" and this is "${attributes.classification}"`;

  return undefined;
}

function rank(label: Classification): number {
  return classifications.indexOf(label);
}

function inRanges(address: string, ranges: readonly string[]): boolean {
  const list = new net.BlockList();
  for (const range of ranges) {
    const parsed = parseCidr(range);
    if (parsed) list.addSubnet(parsed.network, parsed.prefix, parsed.family);
  }

  const plain = unmapIpv4(address);
  const family = net.isIPv4(plain) ? 'ipv4' : net.isIPv6(plain) ? 'ipv6' : undefined;
  return family ? list.check(plain, family) : false;
}

/** `::ffff:127.0.0.1`, as Node reports IPv4 peers on a dual-stack socket, is 127.0.0.1. */
function unmapIpv4(address: string): string {
  const match = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return match ? match[1] : address;
}

function parseCidr(
  text: string,
): { network: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [network, prefixText, ...rest] = text.split('/');
  if (rest.length || prefixText === undefined || !/^\d{1,3}$/.test(prefixText)) return undefined;

  const family = net.isIPv4(network) ? 'ipv4' : net.isIPv6(network) ? 'ipv6' : undefined;
  const prefix = Number(prefixText);
  if (!family || prefix > (family === 'ipv4' ? 32 : 128)) return undefined;
  return { network, prefix, family };
}

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

function inSchedule(at: Date, schedule: NonNullable<Conditions['schedule']>): boolean {
  const local = localClock(at, schedule.timeZone);
  const minutes = local.hour * 60 + local.minute;
  const from = minutesOf(schedule.from);
  const to = minutesOf(schedule.to);

  // A window that wraps midnight belongs to the day it starts on.
  const wraps = from > to;
  const inWindow = wraps ? minutes >= from || minutes < to : minutes >= from && minutes < to;
  if (!inWindow) return false;
  if (!schedule.days) return true;

  const startDay = wraps && minutes < to ? previousDay(local.weekday) : local.weekday;
  return schedule.days.includes(startDay);
}

function minutesOf(clock: string): number {
  const [hours, minutes] = clock.split(':').map(Number);
  return hours * 60 + minutes;
}

function localClock(
  at: Date,
  timeZone: string,
): { weekday: Weekday; hour: number; minute: number } {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(at);
  const part = (type: string) => parts.find((entry) => entry.type === type)?.value ?? '';

  return {
    weekday: part('weekday').toLowerCase().slice(0, 3) as Weekday,
    hour: Number(part('hour')),
    minute: Number(part('minute')),
  };
}

function previousDay(day: Weekday): Weekday {
  return weekdays[(weekdays.indexOf(day) + 6) % 7];
}
