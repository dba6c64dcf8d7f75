/** Writes a duration in milliseconds the way an alert summary reads it: `42 seconds`, `5 minutes`, `2 hours 3 minutes`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return 'less than a second';

  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return plural(seconds, 'second');

  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return plural(minutes, 'minute');

  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest ? `${plural(hours, 'hour')} ${plural(rest, 'minute')}` : plural(hours, 'hour');
}

function plural(count: number, unit: string): string {
  return `${count} ${unit}${count === 1 ? '' : 's'}`;
}
