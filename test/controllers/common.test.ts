// What the controllers' pure plans share (services/controllers/common/):
// RFC 3339 timestamps read and written without Date, checked against Date.

import { expect } from 'chai';
import { civilFromDays, daysFromCivil, formatTimestamp, parseTimestampMs } from '../../services/client/timestamps.js';

const iso = (ms: number): string => new Date(ms).toISOString();

describe('controllers: common', function () {
  describe('time', function () {
    it('parses RFC 3339 as Date does, without Date', function () {
      for (const text of ['2026-11-25T12:00:00Z', '2024-02-29T23:59:59.999Z', '1970-01-01T00:00:00Z', '2026-11-25T12:00:00.123456789+02:00', '1999-12-31T23:00:00-05:30']) {
        expect(parseTimestampMs(text), text).to.equal(Date.parse(text));
      }
      expect(parseTimestampMs('yesterday')).to.equal(undefined);
      expect(parseTimestampMs('2026-13-01T00:00:00Z')).to.equal(undefined);
      expect(parseTimestampMs(undefined)).to.equal(undefined);
    });

    it('formats RFC 3339 in whole seconds as Date does, without Date', function () {
      const instants = [
        0,
        Date.parse('2026-11-25T12:00:00Z'),
        Date.parse('2026-11-25T12:00:00.999Z'),
        Date.parse('2024-02-29T23:59:59.999Z'),
        Date.parse('2000-03-01T00:00:00Z'),
        Date.parse('1999-12-31T23:59:59Z'),
        Date.parse('2099-12-31T23:59:59Z'),
        Date.parse('2100-12-31T00:00:00Z'),
        Date.parse('1969-12-31T23:59:00Z'),
        Date.parse('1969-12-31T23:59:59.500Z'),
      ];
      for (const ms of instants) expect(formatTimestamp(ms), iso(ms)).to.equal(iso(ms).replace(/\.\d{3}Z$/, 'Z'));
      for (const text of ['2026-11-25T12:00:00Z', '2024-02-29T23:59:59Z', '1970-01-01T00:00:00Z']) expect(formatTimestamp(parseTimestampMs(text)!)).to.equal(text);
    });

    it('formats the wall time at a UTC offset, with the offset', function () {
      const at = Date.parse('2026-03-01T10:00:00Z');
      expect(formatTimestamp(at, 3_600_000)).to.equal('2026-03-01T11:00:00+01:00');
      expect(formatTimestamp(at, -5.5 * 3_600_000)).to.equal('2026-03-01T04:30:00-05:30');
      expect(formatTimestamp(Date.parse('2026-03-01T23:30:00Z'), 3_600_000)).to.equal('2026-03-02T00:30:00+01:00');
    });

    it('converts days and civil dates both ways, as Date does', function () {
      for (const days of [-719_468, -1, 0, 59, 10_957, 11_016, 19_782, 47_482]) {
        const date = new Date(days * 86_400_000);
        const civil = civilFromDays(days);
        expect([civil.year, civil.month, civil.day], String(days)).to.deep.equal([date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()]);
        expect(daysFromCivil(civil.year, civil.month, civil.day)).to.equal(days);
      }
    });
  });
});
