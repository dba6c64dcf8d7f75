/**
 * Converts the value of an `<input type="datetime-local">`, which is in the browser's time
 * zone, to an ISO 8601 timestamp in UTC; returns undefined for an empty or invalid value.
 */
export function localInputToIso(value: string): string | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** Formats a date as the value of an `<input type="datetime-local">` in the browser's time zone. */
export function isoToLocalInput(date: Date): string {
  const pad = (value: number) => String(value).padStart(2, '0');
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

/** Returns the `datetime-local` value `days` days from now, a default for expiry fields. */
export function daysFromNowInput(days: number): string {
  return isoToLocalInput(new Date(Date.now() + days * 86_400_000));
}
