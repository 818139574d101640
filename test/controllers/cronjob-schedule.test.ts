// The cron schedule parser and its next/previous run computation (pure),
// and the calendar arithmetic under it.

import { expect } from 'chai';
import { civilTime, msFromCivil, timeZone, UnknownTimeZoneError, UTC } from '../../services/controllers/cronjob/reconcile-calendar.js';
import { CronSyntaxError, MAX_MISSED_SCHEDULES, missedSchedules, nextRun, parseCron, previousRun } from '../../services/controllers/cronjob/reconcile-cron.js';

const at = (text: string): number => Date.parse(text);
const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString().replace('.000Z', 'Z'));
/** The first `count` runs after `from`. */
function runs(schedule: string, from: string, count: number, zone = UTC): Array<string | undefined> {
  const parsed = parseCron(schedule);
  const out: Array<string | undefined> = [];
  let t: number | undefined = at(from);
  for (let i = 0; i < count && t !== undefined; i++) {
    t = nextRun(parsed, t, zone);
    out.push(iso(t));
  }
  return out;
}
const values = (flags: readonly boolean[]): number[] => flags.flatMap((flag, value) => (flag ? [value] : []));
const syntaxError = (schedule: string): CronSyntaxError => {
  try {
    parseCron(schedule);
  } catch (error) {
    expect(error).to.be.instanceOf(CronSyntaxError);
    return error as CronSyntaxError;
  }
  throw new Error(`${schedule} parsed`);
};

describe('controllers: cron schedules', function () {
  it('does calendar arithmetic as Date does, without Date', function () {
    for (const text of ['1970-01-01T00:00:00Z', '2024-02-29T23:59:59Z', '2000-03-01T12:34:56Z', '1969-12-31T23:59:00Z', '2100-12-31T00:00:00Z']) {
      const ms = at(text);
      const date = new Date(ms);
      const civil = civilTime(ms);
      expect([civil.year, civil.month, civil.day, civil.hour, civil.minute, civil.second, civil.weekday], text).to.deep.equal([date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds(), date.getUTCDay()]);
      expect(msFromCivil(civil.year, civil.month, civil.day, civil.hour, civil.minute, civil.second)).to.equal(ms);
    }
  });

  it('parses each syntax form', function () {
    const every = parseCron('* * * * *');
    expect(values(every.minutes)).to.have.length(60);
    expect(every.daysOfMonthStar && every.daysOfWeekStar).to.equal(true);
    expect(values(parseCron('5,10-12,*/20 * * * *').minutes)).to.deep.equal([0, 5, 10, 11, 12, 20, 40]);
    expect(values(parseCron('0 9-17/4 * * *').hours)).to.deep.equal([9, 13, 17]);
    // "a/n" is a through the maximum, every n.
    expect(values(parseCron('0 0 10/7 * *').daysOfMonth)).to.deep.equal([10, 17, 24, 31]);
    expect(values(parseCron('0 0 1 JAN,mar-May *').months)).to.deep.equal([1, 3, 4, 5]);
    expect(values(parseCron('0 0 * * MON-FRI').daysOfWeek)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(values(parseCron('0 0 * * sun,Sat').daysOfWeek)).to.deep.equal([0, 6]);
    // robfig: "?" is "*"; a stepped "*" restricts the day fields.
    expect(parseCron('0 0 ? * 1').daysOfMonthStar).to.equal(true);
    expect(parseCron('0 0 */2 * 1').daysOfMonthStar).to.equal(false);
    expect(parseCron('0 0 */1 * 1').daysOfMonthStar).to.equal(true);
  });

  it('expands the @ descriptors', function () {
    const same = (a: string, b: string): void => {
      expect({ ...parseCron(a), source: '' }, a).to.deep.equal({ ...parseCron(b), source: '' });
    };
    same('@yearly', '0 0 1 1 *');
    same('@annually', '0 0 1 1 *');
    same('@monthly', '0 0 1 * *');
    same('@weekly', '0 0 * * 0');
    same('@daily', '0 0 * * *');
    same('@midnight', '0 0 * * *');
    same('@hourly', '0 * * * *');
    same('@HOURLY', '0 * * * *');
  });

  it('refuses bad schedules with an error naming the field', function () {
    const cases: Array<[string, string, RegExp]> = [
      ['60 * * * *', 'minute', /60 is above the maximum 59/],
      ['* 24 * * *', 'hour', /24 is above the maximum 23/],
      ['* * 0 * *', 'day-of-month', /0 is below the minimum 1/],
      ['* * 32 * *', 'day-of-month', /32 is above the maximum 31/],
      ['* * * 13 *', 'month', /13 is above the maximum 12/],
      ['* * * FOO *', 'month', /"FOO" is not a number or a name \(JAN..DEC\)/],
      ['* * * * 7', 'day-of-week', /7 is above the maximum 6/],
      ['* * * * MOO', 'day-of-week', /not a number or a name \(SUN..SAT\)/],
      ['*/0 * * * *', 'minute', /step "0" must be a positive number/],
      ['5-1 * * * *', 'minute', /starts after it ends/],
      ['1,,2 * * * *', 'minute', /empty list element/],
      ['1-2-3 * * * *', 'minute', /not a value or a range/],
      ['1/2/3 * * * *', 'minute', /too many slashes/],
      ['* * * *', 'schedule', /expected exactly 5 fields .* found 4/],
      ['* * * * * *', 'schedule', /found 6/],
      ['', 'schedule', /found 0/],
      ['@every 5m', 'schedule', /unknown descriptor/],
      ['TZ=UTC * * * * *', 'schedule', /use spec.timeZone/],
      ['CRON_TZ=UTC * * * * *', 'schedule', /use spec.timeZone/],
    ];
    for (const [schedule, field, detail] of cases) {
      const error = syntaxError(schedule);
      expect(error.field, schedule).to.equal(field);
      expect(error.message, schedule).to.match(detail);
      expect(error.message).to.contain(`invalid schedule ${JSON.stringify(schedule)}: ${field}:`);
    }
  });

  it('computes next runs across hour, day, month and year boundaries', function () {
    expect(runs('*/5 * * * *', '2026-01-01T00:02:00Z', 3)).to.deep.equal(['2026-01-01T00:05:00Z', '2026-01-01T00:10:00Z', '2026-01-01T00:15:00Z']);
    // Strictly after: a time on the schedule gives the next one, seconds are ignored.
    expect(runs('*/5 * * * *', '2026-01-01T00:05:00Z', 1)).to.deep.equal(['2026-01-01T00:10:00Z']);
    expect(runs('*/5 * * * *', '2026-01-01T00:04:59.999Z', 1)).to.deep.equal(['2026-01-01T00:05:00Z']);
    expect(runs('30 23 * * *', '2026-01-31T23:45:00Z', 2)).to.deep.equal(['2026-02-01T23:30:00Z', '2026-02-02T23:30:00Z']);
    expect(runs('@hourly', '2026-12-31T23:30:00Z', 1)).to.deep.equal(['2027-01-01T00:00:00Z']);
    expect(runs('@yearly', '2026-06-15T00:00:00Z', 2)).to.deep.equal(['2027-01-01T00:00:00Z', '2028-01-01T00:00:00Z']);
    expect(runs('0 12 31 * *', '2026-01-31T12:00:00Z', 3)).to.deep.equal(['2026-03-31T12:00:00Z', '2026-05-31T12:00:00Z', '2026-07-31T12:00:00Z']);
    expect(runs('15 10 * DEC,JAN *', '2026-01-31T11:00:00Z', 1)).to.deep.equal(['2026-12-01T10:15:00Z']);
  });

  it('finds 29 February only in leap years, and gives up on dates that never come', function () {
    expect(runs('0 0 29 2 *', '2023-03-01T00:00:00Z', 3)).to.deep.equal(['2024-02-29T00:00:00Z', '2028-02-29T00:00:00Z', '2032-02-29T00:00:00Z']);
    // 2100 is not a leap year: from 2097 the next one is 2104, beyond the five-year horizon.
    expect(runs('0 0 29 2 *', '2097-01-01T00:00:00Z', 1)).to.deep.equal([undefined]);
    expect(nextRun(parseCron('0 0 30 2 *'), at('2026-01-01T00:00:00Z'))).to.equal(undefined);
    expect(previousRun(parseCron('0 0 31 4 *'), at('2026-01-01T00:00:00Z'))).to.equal(undefined);
  });

  it('matches a day when day-of-month OR day-of-week matches, if both are restricted', function () {
    // 1 March 2026 is a Sunday; Mondays are 2, 9, 16...
    expect(runs('0 0 1,15 * MON', '2026-02-28T12:00:00Z', 5)).to.deep.equal(['2026-03-01T00:00:00Z', '2026-03-02T00:00:00Z', '2026-03-09T00:00:00Z', '2026-03-15T00:00:00Z', '2026-03-16T00:00:00Z']);
    // One of them "*": only the other restricts.
    expect(runs('0 0 * * MON', '2026-02-28T12:00:00Z', 2)).to.deep.equal(['2026-03-02T00:00:00Z', '2026-03-09T00:00:00Z']);
    expect(runs('0 0 13 * *', '2026-02-28T12:00:00Z', 1)).to.deep.equal(['2026-03-13T00:00:00Z']);
    // Friday the 13th is not what "0 0 13 * 5" means: the 13th, or any Friday.
    expect(runs('0 0 13 * 5', '2026-03-01T00:00:00Z', 3)).to.deep.equal(['2026-03-06T00:00:00Z', '2026-03-13T00:00:00Z', '2026-03-20T00:00:00Z']);
    // A stepped "*" counts as a restriction (robfig): every other day OR Monday.
    expect(runs('0 0 */10 * 1', '2026-03-01T00:00:00Z', 3)).to.deep.equal(['2026-03-02T00:00:00Z', '2026-03-09T00:00:00Z', '2026-03-11T00:00:00Z']);
  });

  it('finds the previous run at or before a time', function () {
    const schedule = parseCron('*/5 * * * *');
    expect(iso(previousRun(schedule, at('2026-01-01T00:05:00Z')))).to.equal('2026-01-01T00:05:00Z');
    expect(iso(previousRun(schedule, at('2026-01-01T00:04:59Z')))).to.equal('2026-01-01T00:00:00Z');
    expect(iso(previousRun(parseCron('0 0 29 2 *'), at('2027-06-01T00:00:00Z')))).to.equal('2024-02-29T00:00:00Z');
    expect(iso(previousRun(parseCron('30 6 * * MON'), at('2026-01-01T00:00:00Z')))).to.equal('2025-12-29T06:30:00Z');
  });

  it('counts missed schedules, up to the limit', function () {
    const schedule = parseCron('*/5 * * * *');
    expect(missedSchedules(schedule, at('2026-01-01T00:00:00Z'), at('2026-01-01T00:04:59Z'))).to.deep.equal({ mostRecentMs: undefined, missed: 0 });
    expect(missedSchedules(schedule, at('2026-01-01T00:00:00Z'), at('2026-01-01T00:05:00Z'))).to.deep.equal({ mostRecentMs: at('2026-01-01T00:05:00Z'), missed: 1 });
    expect(missedSchedules(schedule, at('2026-01-01T00:00:00Z'), at('2026-01-01T00:17:00Z'))).to.deep.equal({ mostRecentMs: at('2026-01-01T00:15:00Z'), missed: 3 });
    expect(missedSchedules(schedule, at('2026-01-01T00:00:00Z'), at('2026-01-01T08:20:00Z'))).to.deep.equal({ mostRecentMs: at('2026-01-01T08:20:00Z'), missed: 100 });
    expect(missedSchedules(schedule, at('2026-01-01T00:00:00Z'), at('2026-01-01T08:25:00Z'))).to.deep.equal({ mostRecentMs: at('2026-01-01T08:25:00Z'), missed: MAX_MISSED_SCHEDULES + 1 });
    // Years of missed minutes cost no more than 101 steps.
    expect(missedSchedules(parseCron('* * * * *'), at('2020-01-01T00:00:00Z'), at('2026-01-01T00:00:30Z'))).to.deep.equal({ mostRecentMs: at('2026-01-01T00:00:00Z'), missed: MAX_MISSED_SCHEDULES + 1 });
  });

  it('runs on the wall clock of spec.timeZone, skipping times a DST gap removes and running repeated ones once', function () {
    const paris = timeZone('Europe/Paris');
    expect(paris.offsetMs(at('2026-01-15T12:00:00Z'))).to.equal(3_600_000);
    expect(paris.offsetMs(at('2026-07-15T12:00:00Z'))).to.equal(7_200_000);
    expect(runs('0 9 * * *', '2026-01-15T00:00:00Z', 1, paris)).to.deep.equal(['2026-01-15T08:00:00Z']);
    expect(runs('0 9 * * *', '2026-07-15T00:00:00Z', 1, paris)).to.deep.equal(['2026-07-15T07:00:00Z']);
    // 29 March 2026: 02:00 Paris time jumps to 03:00; 02:30 does not happen that day.
    expect(runs('30 2 * * *', '2026-03-28T12:00:00Z', 2, paris)).to.deep.equal(['2026-03-30T00:30:00Z', '2026-03-31T00:30:00Z']);
    // 25 October 2026: 02:30 Paris time happens twice; it runs at the first.
    expect(runs('30 2 * * *', '2026-10-24T12:00:00Z', 2, paris)).to.deep.equal(['2026-10-25T00:30:00Z', '2026-10-26T01:30:00Z']);
    expect(iso(previousRun(parseCron('0 9 * * *'), at('2026-07-15T06:59:00Z'), paris))).to.equal('2026-07-14T07:00:00Z');
    expect(() => timeZone('Mars/Olympus_Mons')).to.throw(UnknownTimeZoneError, /unknown time zone "Mars\/Olympus_Mons"/);
    expect(timeZone(undefined)).to.equal(UTC);
    expect(timeZone('')).to.equal(UTC);
  });
});
