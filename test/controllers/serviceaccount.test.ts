// Service accounts: the controllers' pure decisions (a default account per
// active namespace; one referenced token Secret per account; token Secrets
// of gone accounts deleted) and the API server's authentication of their
// tokens from the watch cache.

import { expect } from 'chai';
import type { Secret, ServiceAccount } from '../../proto/gen/resources/v1/core.js';
import { ServiceAccountTokens } from '../../services/apiserver/access.js';
import { Registry } from '../../services/apiserver/registry.js';
import { WatchCache } from '../../services/apiserver/watch-cache.js';
import { planDefaultServiceAccounts, planServiceAccountToken, planTokenSecret, tokenSecret } from '../../services/controllers/serviceaccount/reconcile.js';
import type { ReplicatedStore } from '../../services/store/index.js';
import { openSingleStore } from '../support/single-store.js';

const account: ServiceAccount = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'builder', namespace: 'ci', uid: 'sa-uid' } };

function token(name: string, extra: { uid?: string; account?: string; data?: Record<string, string>; deleting?: boolean } = {}): Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/service-account-token',
    metadata: {
      name,
      namespace: 'ci',
      annotations: { 'kubernetes.io/service-account.name': extra.account ?? 'builder', 'kubernetes.io/service-account.uid': extra.uid ?? 'sa-uid' },
      ...(extra.deleting === true ? { deletionTimestamp: '2026-11-25T12:00:00Z' } : {}),
    },
    data: extra.data ?? { token: 'dG9rZW4=' },
  };
}

describe('controllers: serviceaccount (decision)', function () {
  it('gives every active namespace a default account, and a terminating one none', function () {
    expect(planDefaultServiceAccounts({ metadata: { name: 'ci' }, status: { phase: 'Active' } }, new Set(['builder']))).to.deep.equal([{ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: 'ci' } }]);
    expect(planDefaultServiceAccounts({ metadata: { name: 'ci' } }, new Set(['default']))).to.deep.equal([]);
    expect(planDefaultServiceAccounts({ metadata: { name: 'ci', deletionTimestamp: '2026-11-25T12:00:00Z' }, status: { phase: 'Terminating' } }, new Set())).to.deep.equal([]);
  });

  it('makes a token for an account without one, and keeps the user’s other references', function () {
    expect(planServiceAccountToken({ ...account, secrets: [{ name: 'registry-login' }] }, [])).to.deep.equal({ action: 'create', secrets: [{ name: 'registry-login' }] });
    // A token of another account, of an older account of the same name, or one being deleted, is not this one's.
    expect(planServiceAccountToken(account, [token('other-token-abcde', { account: 'other' }), token('builder-token-old12', { uid: 'old-uid' }), token('builder-token-going', { deleting: true })]).action).to.equal('create');
  });

  it('is satisfied by a referenced token, adopts an unreferenced one, and drops references to tokens that are gone', function () {
    expect(planServiceAccountToken({ ...account, secrets: [{ name: 'builder-token-b2c4d' }] }, [token('builder-token-b2c4d')])).to.deep.equal({ action: 'none' });
    expect(planServiceAccountToken(account, [token('builder-token-zzzzz'), token('builder-token-b2c4d')])).to.deep.equal({ action: 'reference', secrets: [{ name: 'builder-token-b2c4d' }] });
    expect(planServiceAccountToken({ ...account, secrets: [{ name: 'builder-token-gone1' }, { name: 'builder-token-b2c4d' }, { name: 'registry-login' }] }, [token('builder-token-b2c4d')])).to.deep.equal({
      action: 'reference',
      secrets: [{ name: 'builder-token-b2c4d' }, { name: 'registry-login' }],
    });
    expect(planServiceAccountToken({ ...account, secrets: [{ name: 'builder-token-gone1' }] }, [])).to.deep.equal({ action: 'create', secrets: [] });
    expect(planServiceAccountToken({ ...account, metadata: { ...account.metadata, deletionTimestamp: '2026-11-25T12:00:00Z' } }, [])).to.deep.equal({ action: 'none' });
  });

  it('builds the token Secret as Kubernetes’ tokens controller does', function () {
    expect(tokenSecret(account, 'builder-token-b2c4d', { token: 'dG9rZW4=', namespace: 'Y2k=' })).to.deep.equal({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/service-account-token',
      metadata: { name: 'builder-token-b2c4d', namespace: 'ci', annotations: { 'kubernetes.io/service-account.name': 'builder', 'kubernetes.io/service-account.uid': 'sa-uid' } },
      data: { token: 'dG9rZW4=', namespace: 'Y2k=' },
    });
  });

  it('deletes the tokens of gone or replaced accounts, and fills in a token Secret made without a token', function () {
    expect(planTokenSecret(token('builder-token-b2c4d'), account)).to.deep.equal({ action: 'none' });
    expect(planTokenSecret(token('builder-token-b2c4d'), undefined)).to.deep.equal({ action: 'delete' });
    expect(planTokenSecret(token('builder-token-b2c4d', { uid: 'old-uid' }), account)).to.deep.equal({ action: 'delete' });
    expect(planTokenSecret(token('builder-manual', { data: {} }), account)).to.deep.equal({ action: 'populate' });
    expect(planTokenSecret({ ...token('opaque'), type: 'Opaque' }, undefined)).to.deep.equal({ action: 'none' });
  });
});

describe('apiserver: service-account tokens authenticate from the watch cache', function () {
  let store: ReplicatedStore;
  let close: () => Promise<void>;
  let registry: Registry;
  let cache: WatchCache;
  let tokens: ServiceAccountTokens;

  const secret = (name: string, accountName: string, uid: string, value: string): object => ({
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/service-account-token',
    metadata: { name, namespace: 'ci', annotations: { 'kubernetes.io/service-account.name': accountName, 'kubernetes.io/service-account.uid': uid } },
    data: { token: Buffer.from(value).toString('base64') },
  });

  before(async function () {
    ({ store, close } = await openSingleStore());
    registry = new Registry(store, { maxObjectBytes: 64 * 1024 });
    await registry.create('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ci' } });
    cache = new WatchCache(store, { historyEvents: 100 });
    // Made before the cache starts: found by the first index build.
    const early = await registry.create('ServiceAccount', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'early', namespace: 'ci' } });
    await registry.create('Secret', secret('early-token-xxxxx', 'early', String(early.metadata.uid), 'early-secret-token'));
    cache.start();
    tokens = new ServiceAccountTokens(cache);
  });

  after(async function () {
    cache.stop();
    await close();
  });

  it('knows a token as its account, until the Secret or the account goes or the account is replaced', async function () {
    expect(tokens.user('early-secret-token')?.name).to.equal('system:serviceaccount:ci:early');
    const builder = await registry.create('ServiceAccount', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'builder', namespace: 'ci' } });
    await registry.create('Secret', secret('builder-token-b2c4d', 'builder', String(builder.metadata.uid), 'builder-secret-token'));
    // The cache applies each write as the store does: no waiting.
    expect(tokens.user('builder-secret-token')).to.deep.equal({ name: 'system:serviceaccount:ci:builder', uid: builder.metadata.uid, groups: ['system:serviceaccounts', 'system:serviceaccounts:ci', 'system:authenticated'] });
    expect(tokens.user('nobody-has-this')).to.equal(undefined);
    // An Opaque Secret's "token" is not a credential.
    await registry.create('Secret', { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'lookalike', namespace: 'ci', annotations: { 'kubernetes.io/service-account.name': 'builder' } }, data: { token: Buffer.from('opaque-token').toString('base64') } });
    expect(tokens.user('opaque-token')).to.equal(undefined);
    // A token Secret without the account's uid (the tokens controller fills it in) is not yet a credential.
    await registry.create('Secret', secret('builder-unpopulated', 'builder', '', 'unpopulated-token'));
    expect(tokens.user('unpopulated-token')).to.equal(undefined);
    // A token two Secrets hold is nobody's, until one of them goes.
    await registry.create('Secret', secret('builder-copy', 'builder', String(builder.metadata.uid), 'builder-secret-token'));
    expect(tokens.user('builder-secret-token')).to.equal(undefined);
    await registry.delete('Secret', 'ci', 'builder-copy');
    expect(tokens.user('builder-secret-token')?.name).to.equal('system:serviceaccount:ci:builder');
    // The account goes: so does the token's power; one of the same name is another account.
    await registry.delete('ServiceAccount', 'ci', 'builder');
    expect(tokens.user('builder-secret-token')).to.equal(undefined);
    await registry.create('ServiceAccount', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'builder', namespace: 'ci' } });
    expect(tokens.user('builder-secret-token')).to.equal(undefined);
    // The Secret goes.
    await registry.delete('Secret', 'ci', 'early-token-xxxxx');
    expect(tokens.user('early-secret-token')).to.equal(undefined);
  });
});
