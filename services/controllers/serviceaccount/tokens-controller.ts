// The (legacy) tokens controller's loop, as Kubernetes' TokensController:
// informers on ServiceAccounts and on token Secrets (a field selector on
// type); keys are "account:NS/NAME" and "secret:NS/NAME". An account without
// a token gets a Secret `<account>-token-<5 random>` holding a random
// 256-bit token, and lists it in `secrets`; a token Secret whose account is
// gone is deleted; one without a token is given one. The API server
// authenticates these tokens (services/apiserver/access.ts).
//
// Decisions are first made on the caches; anything to write is decided
// again on a live read (the account, its namespace's token Secrets), since
// the caches may not show this controller's own last writes yet — a cache
// without the Secret just made would otherwise make a second one, and one
// without a new account would delete its fresh token. The account's update
// is pinned to the version read; a token Secret made but not yet listed
// (a conflict, a crash) is adopted by the next sync, not duplicated.

import { runLoop } from '../common/loop.js';
import { informerFor, type InformerView, type SharedInformers } from '../../client/shared-informers.js';
import { randomBytes, randomInt } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Secret, ServiceAccount } from '../../../proto/gen/resources/v1/core.js';
import { keyOf } from '../../client/informer.js';
import { statusCodeOf, type KubeObject, type ResourceClient } from '../../client/resources.js';
import { WorkQueue } from '../../client/workqueue.js';
import {
  accountNameOf,
  NAME_SUFFIX_ALPHABET,
  NAME_SUFFIX_LENGTH,
  planServiceAccountToken,
  planTokenSecret,
  SERVICE_ACCOUNT_TOKEN_TYPE,
  SERVICE_ACCOUNT_UID_ANNOTATION,
  tokenSecret,
} from './reconcile.js';

export interface TokensControllerOptions {
  readonly client: ResourceClient;
  /** Warm shared informers (a waiting candidate's); absent: the controller's own. */
  readonly informers?: SharedInformers;
  /** The cluster CA (PEM), put in each token Secret as ca.crt when given. */
  readonly rootCaPem?: string;
  readonly workers?: number;
  readonly log?: (line: string) => void;
}

/** Random bytes in a token: 256 bits. */
export const TOKEN_BYTES = 32;
/** Names tried when a generated Secret name is taken. */
const MAX_NAME_ATTEMPTS = 5;
export const TOKEN_SECRETS = `type=${SERVICE_ACCOUNT_TOKEN_TYPE}`;

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

function codeOf(error: unknown): grpc.status | undefined {
  return statusCodeOf(error);
}

/** Undefined for NotFound; other errors are thrown. */
async function unlessNotFound<T>(promise: Promise<T>): Promise<T | undefined> {
  try {
    return await promise;
  } catch (error) {
    if (codeOf(error) === grpc.status.NOT_FOUND) return undefined;
    throw error;
  }
}

export class TokensController {
  private readonly accounts: InformerView<KubeObject>;
  private readonly secrets: InformerView<KubeObject>;
  private readonly queue = new WorkQueue<string>();

  constructor(private readonly options: TokensControllerOptions) {
    this.accounts = informerFor(options, 'ServiceAccount');
    this.secrets = informerFor(options, 'Secret', { fieldSelector: TOKEN_SECRETS });
  }

  async run(signal: AbortSignal): Promise<void> {
    const account = (object: KubeObject): void => this.queue.add(`account:${keyOf(object)}`);
    const secret = (object: KubeObject): void => this.queue.add(`secret:${keyOf(object)}`);
    this.accounts.onAdd(account);
    this.accounts.onUpdate((_old, object) => account(object));
    // Its token Secrets go with it.
    this.accounts.onDelete((object) => {
      for (const token of this.secretsIn(object.metadata?.namespace ?? '')) if (accountNameOf(token) === object.metadata?.name) secret(token as KubeObject);
    });
    this.secrets.onAdd(secret);
    this.secrets.onUpdate((_old, object) => secret(object));
    // Its account needs another.
    this.secrets.onDelete((object) => {
      const name = accountNameOf(object as Secret);
      if (name !== undefined) this.queue.add(`account:${object.metadata?.namespace ?? ''}/${name}`);
    });
    await runLoop({ signal, queue: this.queue, own: [this.accounts, this.secrets], workers: this.options.workers ?? 2, name: 'tokens', sync: (key) => this.sync(key), log: this.options.log });
  }

  private secretsIn(namespace: string): Secret[] {
    return (this.secrets.list() as Secret[]).filter((secret) => secret.metadata?.namespace === namespace);
  }

  private sync(key: string): Promise<void> {
    const colon = key.indexOf(':');
    const [namespace = '', name = ''] = key.slice(colon + 1).split('/');
    return key.startsWith('account:') ? this.syncAccount(namespace, name) : this.syncSecret(namespace, name);
  }

  private async syncAccount(namespace: string, name: string): Promise<void> {
    const cached = this.accounts.get(namespace, name) as ServiceAccount | undefined;
    if (cached === undefined || planServiceAccountToken(cached, this.secretsIn(namespace)).action === 'none') return;
    const client = this.options.client;
    const live = (await unlessNotFound(client.get('ServiceAccount', namespace, name))) as (KubeObject & ServiceAccount) | undefined;
    if (live === undefined) return;
    const liveSecrets = (await client.list('Secret', { namespace, fieldSelector: TOKEN_SECRETS })).items as Secret[];
    const plan = planServiceAccountToken(live, liveSecrets);
    if (plan.action === 'none') return;
    if (plan.action === 'reference') {
      await client.update('ServiceAccount', { ...live, secrets: plan.secrets });
      return;
    }
    const created = await this.createToken(live);
    try {
      await client.update('ServiceAccount', { ...live, secrets: [...plan.secrets, { name: created }] });
    } catch (error) {
      // The account is gone: so is the token's reason to be. (On a conflict the next sync adopts it.)
      if (codeOf(error) === grpc.status.NOT_FOUND) await unlessNotFound(client.delete('Secret', namespace, created));
      throw error;
    }
    this.options.log?.(`tokens: made ${namespace}/${created} for service account ${name}`);
  }

  /** Create a token Secret for the account under a fresh name; its name. */
  private async createToken(account: ServiceAccount): Promise<string> {
    const namespace = account.metadata?.namespace ?? '';
    for (let attempt = 1; ; attempt++) {
      const name = `${account.metadata?.name ?? ''}-token-${suffix()}`;
      try {
        await this.options.client.create('Secret', tokenSecret(account, name, this.tokenData(namespace)));
        return name;
      } catch (error) {
        if (codeOf(error) !== grpc.status.ALREADY_EXISTS || attempt >= MAX_NAME_ATTEMPTS) throw error;
      }
    }
  }

  /** A new token's data, base64 as Secrets keep it. */
  private tokenData(namespace: string): Record<string, string> {
    return {
      token: base64(randomBytes(TOKEN_BYTES).toString('base64url')),
      namespace: base64(namespace),
      ...(this.options.rootCaPem === undefined ? {} : { 'ca.crt': base64(this.options.rootCaPem) }),
    };
  }

  private async syncSecret(namespace: string, name: string): Promise<void> {
    const secret = this.secrets.get(namespace, name) as (KubeObject & Secret) | undefined;
    const accountName = secret === undefined ? undefined : accountNameOf(secret);
    if (secret === undefined || accountName === undefined) return;
    if (planTokenSecret(secret, this.accounts.get(namespace, accountName) as ServiceAccount | undefined).action === 'none') return;
    const client = this.options.client;
    const account = (await unlessNotFound(client.get('ServiceAccount', namespace, accountName))) as ServiceAccount | undefined;
    const plan = planTokenSecret(secret, account);
    if (plan.action === 'delete') {
      // Pinned: a Secret changed since it was read is looked at again, not deleted blind.
      await unlessNotFound(client.delete('Secret', namespace, name, { resourceVersion: secret.metadata?.resourceVersion ?? '' }));
      this.options.log?.(`tokens: deleted ${namespace}/${name}: service account ${accountName} is gone`);
    } else if (plan.action === 'populate' && account !== undefined) {
      const annotations = { ...secret.metadata?.annotations, [SERVICE_ACCOUNT_UID_ANNOTATION]: account.metadata?.uid ?? '' };
      const fresh = this.tokenData(namespace);
      // What the Secret lacks, from a fresh token's data; what it has stays.
      const data = { ...fresh, ...secret.data, ...((secret.data?.token ?? '') === '' ? { token: fresh.token! } : {}) };
      await client.update('Secret', { ...secret, metadata: { ...secret.metadata, annotations }, data });
    }
  }
}

/** Kubernetes' generated-name suffix: NAME_SUFFIX_LENGTH characters of its alphabet. */
function suffix(): string {
  let text = '';
  for (let index = 0; index < NAME_SUFFIX_LENGTH; index++) text += NAME_SUFFIX_ALPHABET[randomInt(NAME_SUFFIX_ALPHABET.length)];
  return text;
}
