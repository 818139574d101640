// Civil calendar arithmetic on epoch milliseconds without Date, so reconcile
// logic stays deterministic (the lint forbids Date there): wall-clock times
// and weekdays (the dates themselves, and RFC 3339 formatting, are
// services/client/timestamps.ts's), and time zones through Intl (which
// formats a given instant; it reads no clock).

import { civilFromDays, daysFromCivil } from '../../client/timestamps.js';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;

export interface CivilTime {
  readonly year: number;
  /** 1..12 */
  readonly month: number;
  /** 1..31 */
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  /** 0 = Sunday .. 6 = Saturday */
  readonly weekday: number;
}

export function civilTime(ms: number): CivilTime {
  const days = Math.floor(ms / DAY_MS);
  const rest = ms - days * DAY_MS;
  const { year, month, day } = civilFromDays(days);
  // 1970-01-01 was a Thursday.
  const weekday = (((days + 4) % 7) + 7) % 7;
  return { year, month, day, hour: Math.floor(rest / HOUR_MS), minute: Math.floor((rest % HOUR_MS) / MINUTE_MS), second: Math.floor((rest % MINUTE_MS) / 1000), weekday };
}

export function msFromCivil(year: number, month: number, day: number, hour = 0, minute = 0, second = 0): number {
  return daysFromCivil(year, month, day) * DAY_MS + hour * HOUR_MS + minute * MINUTE_MS + second * 1000;
}

/** A time zone: the offset of its wall clock from UTC at an instant. */
export interface TimeZone {
  readonly name: string;
  offsetMs(instantMs: number): number;
}

export const UTC: TimeZone = { name: 'UTC', offsetMs: () => 0 };

export class UnknownTimeZoneError extends Error {
  override readonly name = 'UnknownTimeZoneError';
  constructor(readonly timeZone: string) {
    super(`unknown time zone ${JSON.stringify(timeZone)}`);
  }
}

/** Formatters are costly to build; one per zone name (a bounded set: the zones in use). */
const formatters = new Map<string, Intl.DateTimeFormat>();
const MAX_CACHED_ZONES = 1000;

/** An IANA zone ("Europe/Paris"); UTC when `name` is empty or absent. Throws UnknownTimeZoneError. */
export function timeZone(name: string | undefined): TimeZone {
  if (name === undefined || name === '' || name === 'UTC' || name === 'Etc/UTC') return UTC;
  let formatter = formatters.get(name);
  if (formatter === undefined) {
    try {
      formatter = new Intl.DateTimeFormat('en-US', { timeZone: name, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric', era: 'short' });
    } catch {
      throw new UnknownTimeZoneError(name);
    }
    if (formatters.size >= MAX_CACHED_ZONES) formatters.clear();
    formatters.set(name, formatter);
  }
  const zoneFormatter = formatter;
  return {
    name,
    offsetMs: (instantMs) => {
      const seconds = Math.floor(instantMs / 1000) * 1000;
      const parts: Record<string, string> = {};
      for (const part of zoneFormatter.formatToParts(seconds)) parts[part.type] = part.value;
      const year = parts.era === 'BC' || parts.era === 'B' ? 1 - Number(parts.year) : Number(parts.year);
      return msFromCivil(year, Number(parts.month), Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second)) - seconds;
    },
  };
}

/** The wall-clock time of an instant in a zone, as milliseconds on a UTC scale. */
export function wallMs(zone: TimeZone, instantMs: number): number {
  return instantMs + zone.offsetMs(instantMs);
}

/**
 * The first instant whose wall clock in `zone` reads `wall`; undefined when
 * the zone skips that wall time (a daylight-saving gap).
 */
export function instantOf(zone: TimeZone, wall: number): number | undefined {
  if (zone === UTC) return wall;
  // The offset can only be one of the offsets around the wall time (a day either side covers any transition).
  const candidates = [...new Set([zone.offsetMs(wall - DAY_MS), zone.offsetMs(wall), zone.offsetMs(wall + DAY_MS)])].map((offset) => wall - offset).sort((a, b) => a - b);
  return candidates.find((instant) => wallMs(zone, instant) === wall);
}
