/** Parses an ISO 8601 timestamp from the API, or returns null for a missing or invalid one. */
export function parseTimestamp(value: string | null | undefined): Date | null {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

function pad(value: number): string {
  return String(value).padStart(2, '0');
}

/** Formats a date in the browser's time zone as `YYYY-MM-DD HH:MM:SS`. */
export function formatLocal(date: Date): string {
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return `${day} ${time}`;
}

/** Formats a date in UTC as `YYYY-MM-DD HH:MM:SS.mmm UTC`. */
export function formatUtc(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', ' UTC');
}

/** Formats a duration in milliseconds with its two largest units, such as `2 h 14 min`. */
export function formatDuration(milliseconds: number): string {
  const totalSeconds = Math.max(0, Math.round(milliseconds / 1000));
  const units: [string, number][] = [
    ['d', Math.floor(totalSeconds / 86400)],
    ['h', Math.floor(totalSeconds / 3600) % 24],
    ['min', Math.floor(totalSeconds / 60) % 60],
    ['s', totalSeconds % 60],
  ];

  const first = units.findIndex(([, amount]) => amount > 0);
  if (first === -1) return '0 s';

  return units
    .slice(first, first + 2)
    .filter(([, amount]) => amount > 0)
    .map(([unit, amount]) => `${amount} ${unit}`)
    .join(' ');
}

/** Returns the IANA name of the browser's time zone, such as `Europe/Berlin`. */
export function localTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}
