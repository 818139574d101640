// RFC 3339 timestamps to epoch milliseconds and back without Date, so
// reconcile logic stays deterministic (the lint forbids Date there): the
// caller passes "now" in; timestamps inside objects are read with
// parseTimestampMs and written with formatTimestamp. Proleptic Gregorian
// dates by Howard Hinnant's algorithms.

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;

/** Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

/** Milliseconds since the epoch; undefined when `text` is not an RFC 3339 timestamp. */
export function parseTimestampMs(text: string | undefined): number | undefined {
  const match = RFC3339.exec(text ?? '');
  if (match === null) return undefined;
  const [, year, month, day, hour, minute, second, fraction, zone] = match;
  const [y, mo, d, h, mi, s] = [year, month, day, hour, minute, second].map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return undefined;
  let ms = ((daysFromCivil(y, mo, d) * 24 + h) * 60 + mi) * 60_000 + s * 1000 + Math.floor(Number(`0.${fraction ?? '0'}`) * 1000);
  if (zone !== undefined && zone.toUpperCase() !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const [zoneHours, zoneMinutes] = zone.slice(1).split(':').map(Number) as [number, number];
    ms -= sign * (zoneHours * 60 + zoneMinutes) * 60_000;
  }
  return ms;
}

/** The date `days` after 1970-01-01 (Howard Hinnant's civil_from_days). */
export function civilFromDays(days: number): { year: number; month: number; day: number } {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const dayOfEra = z - era * 146097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthIndex = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * monthIndex + 2) / 5) + 1;
  const month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9;
  return { year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

const pad = (value: number, width = 2): string => String(value).padStart(width, '0');

/**
 * RFC 3339 at second precision (the fraction dropped), as Kubernetes
 * serializes metav1.Time: "2026-11-25T12:00:00Z"; with a UTC offset, the
 * wall time there and the offset: "2026-11-25T13:00:00+01:00".
 */
export function formatTimestamp(ms: number, offsetMs = 0): string {
  const seconds = Math.floor((ms + offsetMs) / 1000);
  const days = Math.floor(seconds / 86_400);
  const inDay = seconds - days * 86_400;
  const { year, month, day } = civilFromDays(days);
  const date = `${pad(year, 4)}-${pad(month)}-${pad(day)}T${pad(Math.floor(inDay / 3600))}:${pad(Math.floor((inDay % 3600) / 60))}:${pad(inDay % 60)}`;
  if (offsetMs === 0) return `${date}Z`;
  const minutes = Math.round(Math.abs(offsetMs) / 60_000);
  return `${date}${offsetMs < 0 ? '-' : '+'}${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;
}
