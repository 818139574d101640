// Label selectors (services/client/labels.ts) and the node matching the
// scheduler, the DaemonSet controller and taint eviction share
// (services/client/scheduling.ts), as Kubernetes defines them.

import { expect } from 'chai';
import type { NodeSelectorTerm, PodSpec, Taint, Toleration } from '../../proto/gen/resources/v1/core.js';
import { EMPTY_LABELS, labelMatcher, labelRequirementMatches, labelSelectorMatches, labelsOf } from '../../services/client/labels.js';
import { nodeAffinityMatcher, nodeSelectorTermMatches, tolerated, toleratesTaint } from '../../services/client/scheduling.js';

describe('client: label selectors', function () {
  const labels = labelsOf({ app: 'web', tier: 'front', constructor: 'x' });

  it('evaluates each operator against the label value, absent as undefined', function () {
    expect(labelRequirementMatches('In', ['a', 'b'], 'a')).to.equal(true);
    expect(labelRequirementMatches('In', ['a', 'b'], undefined)).to.equal(false);
    expect(labelRequirementMatches('NotIn', ['a'], 'a')).to.equal(false);
    expect(labelRequirementMatches('NotIn', ['a'], undefined)).to.equal(true);
    expect(labelRequirementMatches('Exists', [], '')).to.equal(true);
    expect(labelRequirementMatches('DoesNotExist', [], undefined)).to.equal(true);
    for (const operator of ['Gt', 'Lt', 'in', undefined]) expect(labelRequirementMatches(operator, ['1'], '2'), String(operator)).to.equal(false);
  });

  it('ANDs matchLabels and matchExpressions; {} selects everything and no selector nothing', function () {
    expect(labelSelectorMatches({ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'back'] }] }, labels)).to.equal(true);
    expect(labelSelectorMatches({ matchLabels: { app: 'web', tier: 'back' } }, labels)).to.equal(false);
    expect(labelSelectorMatches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] }, labels)).to.equal(false);
    expect(labelSelectorMatches({ matchExpressions: [{ key: 'canary', operator: 'DoesNotExist' }, { key: 'constructor', operator: 'Exists' }] }, labels)).to.equal(true);
    expect(labelSelectorMatches({ matchExpressions: [{ key: 'app', operator: 'Gt', values: ['1'] }] }, labels)).to.equal(false);
    expect(labelSelectorMatches({}, labels)).to.equal(true);
    expect(labelSelectorMatches({}, EMPTY_LABELS)).to.equal(true);
    expect(labelSelectorMatches(undefined, labels)).to.equal(false);
    expect(labelMatcher({ matchLabels: { toString: 'x' } })(EMPTY_LABELS)).to.equal(false);
    expect(labelsOf(undefined)).to.equal(EMPTY_LABELS);
    expect(labelsOf({})).to.equal(EMPTY_LABELS);
  });
});

describe('client: node matching', function () {
  const labels = labelsOf({ zone: 'a', cores: '8', disk: 'ssd' });

  it('reads node selector terms: In, NotIn, Exists, DoesNotExist, Gt and Lt on integers, matchFields on metadata.name', function () {
    const term = (term: NodeSelectorTerm): boolean => nodeSelectorTermMatches(term, 'n1', labels);
    expect(term({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }, { key: 'disk', operator: 'Exists' }] })).to.equal(true);
    expect(term({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] })).to.equal(false);
    expect(term({ matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] })).to.equal(true);
    expect(term({ matchExpressions: [{ key: 'cores', operator: 'Gt', values: ['4'] }] })).to.equal(true);
    expect(term({ matchExpressions: [{ key: 'cores', operator: 'Lt', values: ['4'] }] })).to.equal(false);
    expect(term({ matchExpressions: [{ key: 'zone', operator: 'Gt', values: ['4'] }] })).to.equal(false);
    expect(term({ matchExpressions: [{ key: 'cores', operator: 'Gt', values: ['4', '5'] }] })).to.equal(false);
    expect(term({ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] })).to.equal(true);
    expect(term({ matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['n1'] }] })).to.equal(false);
    expect(term({ matchFields: [{ key: 'metadata.uid', operator: 'In', values: ['n1'] }] })).to.equal(false);
    expect(term({})).to.equal(false);
    expect(nodeSelectorTermMatches(undefined, 'n1', labels)).to.equal(false);
  });

  it("matches a pod's nodeSelector (every pair) and required node affinity (any term)", function () {
    expect(nodeAffinityMatcher(undefined)).to.equal(undefined);
    expect(nodeAffinityMatcher({ containers: [] })).to.equal(undefined);
    const affinity = (terms: NodeSelectorTerm[]): PodSpec['affinity'] => ({ nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } });
    expect(nodeAffinityMatcher({ nodeSelector: { zone: 'a', disk: 'ssd' } })!('n1', labels)).to.equal(true);
    expect(nodeAffinityMatcher({ nodeSelector: { zone: 'b' } })!('n1', labels)).to.equal(false);
    const either = nodeAffinityMatcher({ affinity: affinity([{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] }, { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] }]) })!;
    expect(either('n1', labels)).to.equal(true);
    expect(either('n2', labels)).to.equal(false);
    expect(nodeAffinityMatcher({ affinity: affinity([]) })!('n1', labels)).to.equal(false);
    expect(nodeAffinityMatcher({ nodeSelector: { zone: 'b' }, affinity: affinity([{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] }]) })!('n1', labels)).to.equal(false);
  });

  it('matches tolerations as Kubernetes does: key, operator Equal or Exists, value, and an empty effect matching all', function () {
    const taint: Taint = { key: 'k', value: 'v', effect: 'NoExecute' };
    const cases: Array<[Toleration, boolean]> = [
      [{ key: 'k', operator: 'Equal', value: 'v', effect: 'NoExecute' }, true],
      [{ key: 'k', value: 'v', effect: 'NoExecute' }, true],
      [{ key: 'k', operator: 'Equal', value: 'other', effect: 'NoExecute' }, false],
      [{ key: 'k', operator: 'Exists', effect: 'NoExecute' }, true],
      [{ key: 'k', operator: 'Exists' }, true],
      [{ key: 'k', operator: 'Exists', effect: 'NoSchedule' }, false],
      [{ key: 'other', operator: 'Exists' }, false],
      [{ operator: 'Exists' }, true],
      [{ key: 'k', operator: 'Gt', value: 'v' }, false],
    ];
    for (const [toleration, expected] of cases) expect(toleratesTaint(toleration, taint), JSON.stringify(toleration)).to.equal(expected);
    expect(tolerated(cases.map(([toleration]) => toleration).filter((toleration) => toleration.key === 'other'), taint)).to.equal(false);
    expect(tolerated([{ key: 'other', operator: 'Exists' }, { operator: 'Exists' }], taint)).to.equal(true);
    expect(tolerated([], taint)).to.equal(false);
  });
});
