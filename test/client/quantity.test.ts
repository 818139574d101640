// Resource quantities (services/client/quantity.ts): the exact reading the
// scheduler and the autoscaler count in (integer millicores or base units,
// rounded up), and the float base-unit reading and grammar the API server
// validates and charges quotas with.

import { expect } from 'chai';
import { isQuantity, parseQuantity, quantityValue } from '../../services/client/quantity.js';

describe('client: quantities', () => {
  describe('parseQuantity', () => {
    it('reads cpu as integer millicores', () => {
      const cases: Array<[string | number, number]> = [['500m', 500], ['2', 2000], ['0.1', 100], ['1.5', 1500], ['.5', 500], ['100m', 100], ['0.0001', 1], ['1e3', 1_000_000], [2, 2000]];
      for (const [text, millis] of cases) expect(parseQuantity(text, 'milli'), String(text)).to.equal(millis);
    });

    it('reads any quantity in milli-units, rounded up (the autoscaler\'s Quantity.MilliValue())', () => {
      const cases: Array<[string, number]> = [['250m', 250], ['1', 1000], ['0.5', 500], ['128Mi', 134_217_728_000], ['1Gi', 1_073_741_824_000], ['1e9', 1e12], ['500M', 5e11], ['0.1', 100], ['1n', 1]];
      for (const [text, milli] of cases) expect(parseQuantity(text, 'milli'), text).to.equal(milli);
      for (const bad of ['', 'lots', '1 Gi', 'Mi']) expect(parseQuantity(bad, 'milli'), bad).to.equal(undefined);
      expect(parseQuantity(undefined, 'milli')).to.equal(undefined);
    });

    it('reads memory and other resources as integer base units, rounding up', () => {
      const cases: Array<[string, number]> = [
        ['128Mi', 128 * 2 ** 20], ['1Gi', 2 ** 30], ['1.5Gi', 1.5 * 2 ** 30], ['1Ki', 1024], ['1Ti', 2 ** 40], ['1Pi', 2 ** 50], ['1Ei', 2 ** 60],
        ['1k', 1000], ['1M', 1e6], ['1G', 1e9], ['1T', 1e12], ['1P', 1e15], ['1E', 1e18], ['1E3', 1000], ['2e-3', 1],
        ['110', 110], ['0.5', 1], ['1m', 1], ['+7', 7], ['-1', -1], ['0', 0], ['5.', 5],
      ];
      for (const [text, value] of cases) expect(parseQuantity(text), text).to.equal(value);
    });

    it('rejects garbage', () => {
      for (const text of ['', ' ', 'abc', 'Mi', '1.2.3', '5mb', '1 Gi', '1gi', '--1', '1e', '.', '1Kii', '0x10', '1e1000', 'NaN', 'Infinity']) {
        expect(parseQuantity(text), JSON.stringify(text)).to.equal(undefined);
      }
    });
  });

  describe('the API server\'s reading', () => {
    it('knows quantities', () => {
      for (const good of ['100m', '0.5', '128Mi', '1G', '2', '1e3', '.5', '+1Ki']) expect(isQuantity(good), good).to.equal(true);
      for (const bad of ['', 'lots', '1 Gi', '1GB', '--1', 'm']) expect(isQuantity(bad), bad).to.equal(false);
    });

    it('reads quantities in base units, as floats', () => {
      expect(['100m', '1', '1.5', '128Mi', '1G', '2e3', '250m', '.5k'].map((text) => quantityValue(text))).to.deep.equal([0.1, 1, 1.5, 128 * 2 ** 20, 1e9, 2000, 0.25, 500]);
      expect(quantityValue('lots')).to.equal(undefined);
      expect(quantityValue(2)).to.equal(undefined);
    });
  });
});
