import { expect } from 'chai';
import {
  SelectorError,
  labelSelectorRequirements,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from '../../services/apiserver/selectors.js';

describe('apiserver: label and field selectors', () => {
  const web = { app: 'web', tier: 'frontend', env: 'prod' };
  const db = { app: 'db', env: 'dev' };

  it('matches equality, inequality, set-based and existence terms as kubectl does', () => {
    const cases: Array<[string, boolean, boolean]> = [
      ['app=web', true, false],
      ['app==web', true, false],
      ['app!=web', false, true],
      ['env in (prod, staging)', true, false],
      ['env notin (prod)', false, true],
      ['tier', true, false],
      ['!tier', false, true],
      ['app=web,env in (prod)', true, false],
      ['app in (web,db),env!=dev', true, false],
      ['', true, true],
    ];
    for (const [text, matchesWeb, matchesDb] of cases) {
      const requirements = parseLabelSelector(text);
      expect(matchesLabels(requirements, web), `${text} vs web`).to.equal(matchesWeb);
      expect(matchesLabels(requirements, db), `${text} vs db`).to.equal(matchesDb);
    }
    // notin and != also match objects without the key, as in Kubernetes.
    expect(matchesLabels(parseLabelSelector('tier notin (frontend)'), db)).to.equal(true);
    expect(matchesLabels(parseLabelSelector('app=web'), undefined)).to.equal(false);
  });

  it('rejects malformed selectors naming the bad part', () => {
    const bad: Array<[string, RegExp]> = [
      ['app=web,', /empty term/],
      ['env in ()', /at least one value/],
      ['a b c', /cannot parse "a b c"/],
      ['-bad=x', /invalid label key "-bad"/],
      ['app=in valid', /cannot parse/],
      ['app=bad value!', /cannot parse|invalid label value/],
    ];
    for (const [text, message] of bad) expect(() => parseLabelSelector(text), text).to.throw(SelectorError, message);
  });

  it('turns a LabelSelector (matchLabels + matchExpressions) into the same requirements', () => {
    const requirements = labelSelectorRequirements({
      matchLabels: { app: 'web' },
      matchExpressions: [
        { key: 'env', operator: 'In', values: ['prod', 'staging'] },
        { key: 'canary', operator: 'DoesNotExist' },
      ],
    });
    expect(matchesLabels(requirements, web)).to.equal(true);
    expect(matchesLabels(requirements, { ...web, canary: 'yes' })).to.equal(false);
    expect(() => labelSelectorRequirements({ matchExpressions: [{ key: 'env', operator: 'Has' }] }, 'spec.selector')).to.throw(
      SelectorError,
      /spec\.selector\.matchExpressions\[0\]\.operator: must be In, NotIn, Exists or DoesNotExist, not "Has"/,
    );
    expect(() => labelSelectorRequirements({ matchExpressions: [{ key: 'env', operator: 'In', values: [] }] })).to.throw(SelectorError, /must be non-empty/);
    expect(() => labelSelectorRequirements({ matchExpressions: [{ key: 'env', operator: 'Exists', values: ['x'] }] })).to.throw(SelectorError, /must be empty/);
  });

  it('selects on supported fields only', () => {
    const supported = ['metadata.name', 'metadata.namespace', 'spec.nodeName', 'status.phase'];
    const pod = { metadata: { name: 'p1', namespace: 'default' }, spec: { nodeName: 'n1' }, status: { phase: 'Running' } };
    expect(matchesFields(parseFieldSelector('spec.nodeName=n1,status.phase!=Failed', supported), pod)).to.equal(true);
    expect(matchesFields(parseFieldSelector('spec.nodeName=', supported), pod)).to.equal(false);
    expect(matchesFields(parseFieldSelector('spec.nodeName=', supported), { metadata: { name: 'p2' } })).to.equal(true);
    expect(() => parseFieldSelector('spec.image=x', supported)).to.throw(SelectorError, /field "spec.image" is not supported.*supported: metadata.name/);
    expect(() => parseFieldSelector('nonsense', supported)).to.throw(SelectorError, /cannot parse "nonsense"/);
  });
});
