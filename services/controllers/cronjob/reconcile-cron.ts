// The standard 5-field cron schedule, parsed and evaluated as Kubernetes'
// CronJob controller does through robfig/cron (ParseStandard):
//
//   minute hour day-of-month month day-of-week
//
// each field `*`, `?`, a value, a range `a-b`, a step `range/n` or `a/n`
// (a through the maximum), or a comma-separated list of those; month and
// weekday names (JAN..DEC, SUN..SAT); @yearly, @annually, @monthly,
// @weekly, @daily, @midnight, @hourly. When both day fields are
// restricted a day matches if EITHER does (Vixie cron's rule); when one
// is `*` (robfig: unstepped `*` or `?`) only the other restricts.
//
// Times are evaluated on the wall clock of a time zone (UTC by default).
// A wall time that a daylight-saving gap skips does not happen (robfig); a
// wall time that an overlap repeats happens once, at its first instant
// (Vixie).

import { daysFromCivil } from '../../client/timestamps.js';
import { civilTime, DAY_MS, HOUR_MS, instantOf, MINUTE_MS, msFromCivil, UTC, wallMs, type TimeZone } from './reconcile-calendar.js';

export class CronSyntaxError extends Error {
  override readonly name = 'CronSyntaxError';
  constructor(
    readonly schedule: string,
    /** The field at fault ("minute", "day-of-week"...), or "schedule" for the whole. */
    readonly field: string,
    readonly detail: string,
  ) {
    super(`invalid schedule ${JSON.stringify(schedule)}: ${field}: ${detail}`);
  }
}

export interface CronSchedule {
  readonly source: string;
  /** Indexed by value: minutes[0..59], hours[0..23], daysOfMonth[1..31], months[1..12], daysOfWeek[0..6]. */
  readonly minutes: readonly boolean[];
  readonly hours: readonly boolean[];
  readonly daysOfMonth: readonly boolean[];
  readonly months: readonly boolean[];
  readonly daysOfWeek: readonly boolean[];
  /** The day field was an unstepped `*` or `?` (robfig's star bit): the other day field alone restricts. */
  readonly daysOfMonthStar: boolean;
  readonly daysOfWeekStar: boolean;
}

interface FieldSpec {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
}

const FIELDS: readonly FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'] },
  { name: 'day-of-week', min: 0, max: 6, names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] },
];

const DESCRIPTORS: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** robfig gives up looking for a next time this many years ahead (a schedule such as "0 0 30 2 *" never fires). */
export const SEARCH_HORIZON_YEARS = 5;
/** Steps of one search; each skips a month, day, hour or minute, so 5 years never need this many. */
const MAX_SEARCH_STEPS = 1_000_000;

function parseValue(text: string, spec: FieldSpec, fail: (detail: string) => never): number {
  const named = spec.names?.indexOf(text.toUpperCase()) ?? -1;
  if (named >= 0) return named + spec.min;
  if (!/^\d+$/.test(text)) fail(`${JSON.stringify(text)} is not a number${spec.names === undefined ? '' : ` or a name (${spec.names[0]}..${spec.names[spec.names.length - 1]})`}`);
  const value = Number(text);
  if (value < spec.min) fail(`${value} is below the minimum ${spec.min}`);
  if (value > spec.max) fail(`${value} is above the maximum ${spec.max}`);
  return value;
}

/** One field into its set of values; `star` when it was an unstepped `*` or `?`. */
function parseField(text: string, spec: FieldSpec, schedule: string): { values: boolean[]; star: boolean } {
  const fail = (detail: string): never => {
    throw new CronSyntaxError(schedule, spec.name, detail);
  };
  const values: boolean[] = Array.from({ length: spec.max + 1 }, () => false);
  let star = false;
  for (const part of text.split(',')) {
    if (part === '') fail(`empty list element in ${JSON.stringify(text)}`);
    const [range, stepText, extra] = part.split('/');
    if (extra !== undefined) fail(`too many slashes in ${JSON.stringify(part)}`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) fail(`step ${JSON.stringify(stepText)} must be a positive number`);
      step = Number(stepText);
    }
    let low: number;
    let high: number;
    if (range === '*' || range === '?') {
      low = spec.min;
      high = spec.max;
      if (step === 1) star = true;
    } else {
      const bounds = (range ?? '').split('-');
      if (bounds.length > 2 || bounds.some((bound) => bound === '')) fail(`${JSON.stringify(range)} is not a value or a range a-b`);
      low = parseValue(bounds[0]!, spec, fail);
      // "a/n" means a through the maximum, every n.
      high = bounds.length === 2 ? parseValue(bounds[1]!, spec, fail) : stepText !== undefined ? spec.max : low;
      if (low > high) fail(`range ${JSON.stringify(range)} starts after it ends`);
    }
    for (let value = low; value <= high; value += step) values[value] = true;
  }
  return { values, star };
}

/** Parse a schedule; throws CronSyntaxError naming the bad field. */
export function parseCron(schedule: string): CronSchedule {
  const trimmed = schedule.trim();
  if (/^(CRON_)?TZ=/.test(trimmed)) throw new CronSyntaxError(schedule, 'schedule', 'TZ and CRON_TZ are not allowed in the schedule: use spec.timeZone');
  let expanded = trimmed;
  if (trimmed.startsWith('@')) {
    const descriptor = DESCRIPTORS[trimmed.toLowerCase()];
    if (descriptor === undefined) throw new CronSyntaxError(schedule, 'schedule', `unknown descriptor ${JSON.stringify(trimmed)} (use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)`);
    expanded = descriptor;
  }
  const fields = expanded === '' ? [] : expanded.split(/\s+/);
  if (fields.length !== 5) throw new CronSyntaxError(schedule, 'schedule', `expected exactly 5 fields (minute hour day-of-month month day-of-week), found ${fields.length}`);
  const [minutes, hours, daysOfMonth, months, daysOfWeek] = fields.map((field, index) => parseField(field, FIELDS[index]!, schedule)) as [ReturnType<typeof parseField>, ReturnType<typeof parseField>, ReturnType<typeof parseField>, ReturnType<typeof parseField>, ReturnType<typeof parseField>];
  return {
    source: schedule,
    minutes: minutes.values,
    hours: hours.values,
    daysOfMonth: daysOfMonth.values,
    months: months.values,
    daysOfWeek: daysOfWeek.values,
    daysOfMonthStar: daysOfMonth.star,
    daysOfWeekStar: daysOfWeek.star,
  };
}

function dayMatches(schedule: CronSchedule, ms: number): boolean {
  const time = civilTime(ms);
  const dom = schedule.daysOfMonth[time.day] === true;
  const dow = schedule.daysOfWeek[time.weekday] === true;
  return schedule.daysOfMonthStar || schedule.daysOfWeekStar ? dom && dow : dom || dow;
}

const startOfDay = (ms: number): number => Math.floor(ms / DAY_MS) * DAY_MS;
const startOfHour = (ms: number): number => Math.floor(ms / HOUR_MS) * HOUR_MS;
const startOfMonth = (ms: number): number => {
  const time = civilTime(ms);
  return daysFromCivil(time.year, time.month, 1) * DAY_MS;
};

/** The first matching wall time at or after `fromWall` (a whole minute), or undefined within the horizon. */
function searchForward(schedule: CronSchedule, fromWall: number): number | undefined {
  const horizon = msFromCivil(civilTime(fromWall).year + SEARCH_HORIZON_YEARS + 1, 1, 1);
  let t = fromWall;
  for (let step = 0; step < MAX_SEARCH_STEPS && t < horizon; step++) {
    const time = civilTime(t);
    if (schedule.months[time.month] !== true) {
      t = time.month === 12 ? msFromCivil(time.year + 1, 1, 1) : msFromCivil(time.year, time.month + 1, 1);
    } else if (!dayMatches(schedule, t)) {
      t = startOfDay(t) + DAY_MS;
    } else if (schedule.hours[time.hour] !== true) {
      t = startOfHour(t) + HOUR_MS;
    } else if (schedule.minutes[time.minute] !== true) {
      t += MINUTE_MS;
    } else {
      return t;
    }
  }
  return undefined;
}

/** The last matching wall time at or before `fromWall` (a whole minute), or undefined within the horizon. */
function searchBackward(schedule: CronSchedule, fromWall: number): number | undefined {
  const horizon = msFromCivil(civilTime(fromWall).year - SEARCH_HORIZON_YEARS, 1, 1);
  let t = fromWall;
  for (let step = 0; step < MAX_SEARCH_STEPS && t >= horizon; step++) {
    const time = civilTime(t);
    if (schedule.months[time.month] !== true) {
      t = startOfMonth(t) - MINUTE_MS;
    } else if (!dayMatches(schedule, t)) {
      t = startOfDay(t) - MINUTE_MS;
    } else if (schedule.hours[time.hour] !== true) {
      t = startOfHour(t) - MINUTE_MS;
    } else if (schedule.minutes[time.minute] !== true) {
      t -= MINUTE_MS;
    } else {
      return t;
    }
  }
  return undefined;
}

/** The first scheduled instant strictly after `afterMs`; undefined when none comes within SEARCH_HORIZON_YEARS. */
export function nextRun(schedule: CronSchedule, afterMs: number, zone: TimeZone = UTC): number | undefined {
  let from = Math.floor(wallMs(zone, afterMs) / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
  for (let tries = 0; tries < MAX_SEARCH_STEPS; tries++) {
    const wall = searchForward(schedule, from);
    if (wall === undefined) return undefined;
    const instant = instantOf(zone, wall);
    if (instant !== undefined && instant > afterMs) return instant;
    from = wall + MINUTE_MS;
  }
  return undefined;
}

/** The last scheduled instant at or before `atMs`; undefined when none within SEARCH_HORIZON_YEARS. */
export function previousRun(schedule: CronSchedule, atMs: number, zone: TimeZone = UTC): number | undefined {
  let from = Math.floor(wallMs(zone, atMs) / MINUTE_MS) * MINUTE_MS;
  for (let tries = 0; tries < MAX_SEARCH_STEPS; tries++) {
    const wall = searchBackward(schedule, from);
    if (wall === undefined) return undefined;
    const instant = instantOf(zone, wall);
    if (instant !== undefined && instant <= atMs) return instant;
    from = wall - MINUTE_MS;
  }
  return undefined;
}

/** Kubernetes reports "too many missed start times" past this many. */
export const MAX_MISSED_SCHEDULES = 100;

export interface MissedSchedules {
  /** The most recent scheduled instant in (earliestMs, nowMs], if any. */
  readonly mostRecentMs: number | undefined;
  /** How many were missed, counted up to MAX_MISSED_SCHEDULES + 1. */
  readonly missed: number;
}

/** Kubernetes' mostRecentScheduleTime: the schedules in (earliestMs, nowMs] — the latest, and how many. */
export function missedSchedules(schedule: CronSchedule, earliestMs: number, nowMs: number, zone: TimeZone = UTC): MissedSchedules {
  const first = nextRun(schedule, earliestMs, zone);
  if (first === undefined || first > nowMs) return { mostRecentMs: undefined, missed: 0 };
  const mostRecentMs = previousRun(schedule, nowMs, zone) ?? first;
  let missed = 1;
  for (let t: number | undefined = first; missed <= MAX_MISSED_SCHEDULES; missed++) {
    t = nextRun(schedule, t, zone);
    if (t === undefined || t > mostRecentMs) break;
  }
  return { mostRecentMs, missed };
}
