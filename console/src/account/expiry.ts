/** Longest API key lifetime the appliance accepts, in days. */
export const MAX_KEY_LIFETIME_DAYS = 365;

/** Expiry choices of a new API key, in days from today. */
export const EXPIRY_PRESETS = [30, 90, 180] as const;

function pad(value: number): string {
  return String(value).padStart(2, '0');
}

/** Formats a date as the `YYYY-MM-DD` value of an `<input type="date">`, in local time. */
export function dateInputValue(date: Date): string {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** Returns the local date `days` days after `from`. */
export function daysFrom(from: Date, days: number): Date {
  const date = new Date(from);
  date.setDate(date.getDate() + days);
  return date;
}

/**
 * Converts the chosen expiry day to the ISO 8601 instant that the API stores: the end of that
 * day in local time. Returns undefined for an empty or invalid value.
 */
export function expiryInstant(dayValue: string): string | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(dayValue);
  if (!match) return undefined;

  const [, year, month, day] = match.map(Number);
  const end = new Date(year, month - 1, day, 23, 59, 59);
  return Number.isNaN(end.getTime()) ? undefined : end.toISOString();
}

/**
 * Returns the latest day the date input offers. It is one day short of the API's maximum,
 * because the key expires at the end of the chosen day and the API counts 365 days from the
 * request.
 */
export function latestExpiryDay(today: Date): string {
  return dateInputValue(daysFrom(today, MAX_KEY_LIFETIME_DAYS - 1));
}
