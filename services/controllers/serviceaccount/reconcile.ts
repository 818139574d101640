// The service account controllers' decisions, in pure functions, as
// Kubernetes' ServiceAccountsController and (legacy) TokensController make
// them:
//  - every namespace that is not terminating has a ServiceAccount "default";
//  - every ServiceAccount has a token Secret (type
//    kubernetes.io/service-account-token, annotated with the account's name
//    and uid) listed in its `secrets`; an unreferenced token Secret of the
//    account is adopted rather than a second one made;
//  - a token Secret whose account is gone (or was recreated: another uid)
//    is deleted; one of a live account without a token gets one.
// Names and tokens are random: the controller draws them (no randomness here).

import type { Namespace, ObjectReference, Secret, ServiceAccount } from '../../../proto/gen/resources/v1/core.js';

export const SERVICE_ACCOUNT_TOKEN_TYPE = 'kubernetes.io/service-account-token';
export const SERVICE_ACCOUNT_NAME_ANNOTATION = 'kubernetes.io/service-account.name';
export const SERVICE_ACCOUNT_UID_ANNOTATION = 'kubernetes.io/service-account.uid';
/** The accounts every namespace gets (Kubernetes' ServiceAccountsController default). */
export const DEFAULT_SERVICE_ACCOUNTS: readonly string[] = ['default'];
/** Kubernetes' utilrand alphabet for generated name suffixes (no vowels, no look-alikes). */
export const NAME_SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
export const NAME_SUFFIX_LENGTH = 5;

export function isNamespaceActive(namespace: Namespace): boolean {
  return namespace.metadata?.deletionTimestamp === undefined && namespace.status?.phase !== 'Terminating';
}

/** The default accounts a namespace lacks (none for a terminating one). */
export function planDefaultServiceAccounts(namespace: Namespace, existing: ReadonlySet<string>): ServiceAccount[] {
  if (!isNamespaceActive(namespace)) return [];
  const name = namespace.metadata?.name ?? '';
  return DEFAULT_SERVICE_ACCOUNTS.filter((account) => !existing.has(account)).map((account) => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: account, namespace: name } }));
}

/** The account a token Secret says it belongs to. */
export function accountNameOf(secret: Secret): string | undefined {
  if (secret.type !== SERVICE_ACCOUNT_TOKEN_TYPE) return undefined;
  const name = secret.metadata?.annotations?.[SERVICE_ACCOUNT_NAME_ANNOTATION];
  return name === undefined || name === '' ? undefined : name;
}

/** Whether `secret` is a usable token of `account`: the right type, name and uid, not being deleted, with a token. */
export function isTokenOf(secret: Secret, account: ServiceAccount): boolean {
  return (
    accountNameOf(secret) === account.metadata?.name &&
    secret.metadata?.namespace === account.metadata?.namespace &&
    secret.metadata?.annotations?.[SERVICE_ACCOUNT_UID_ANNOTATION] === account.metadata?.uid &&
    secret.metadata?.deletionTimestamp === undefined &&
    (secret.data?.token ?? '') !== ''
  );
}

export type TokenPlan =
  | { readonly action: 'none' }
  /** Set the account's `secrets` to this list (adopting an existing token Secret, or dropping dangling references). */
  | { readonly action: 'reference'; readonly secrets: ObjectReference[] }
  /** Make a token Secret, then list it after `secrets` (which has the dangling references dropped). */
  | { readonly action: 'create'; readonly secrets: ObjectReference[] };

/**
 * What an account needs for its token, from the Secrets of its namespace.
 * References to token Secrets of this account ("<name>-token-…") that no
 * longer exist are dropped; other references are the user's and kept.
 */
export function planServiceAccountToken(account: ServiceAccount, secrets: readonly Secret[]): TokenPlan {
  if (account.metadata?.deletionTimestamp !== undefined) return { action: 'none' };
  const byName = new Map(secrets.map((secret) => [secret.metadata?.name ?? '', secret]));
  const references = account.secrets ?? [];
  const prefix = `${account.metadata?.name ?? ''}-token-`;
  const kept = references.filter((reference) => byName.has(reference.name ?? '') || !(reference.name ?? '').startsWith(prefix));
  const hasToken = kept.some((reference) => {
    const secret = byName.get(reference.name ?? '');
    return secret !== undefined && isTokenOf(secret, account);
  });
  if (hasToken) return kept.length === references.length ? { action: 'none' } : { action: 'reference', secrets: kept };
  const unreferenced = secrets
    .filter((secret) => isTokenOf(secret, account))
    .map((secret) => secret.metadata?.name ?? '')
    .sort()[0];
  if (unreferenced !== undefined) return { action: 'reference', secrets: [...kept, { name: unreferenced }] };
  return { action: 'create', secrets: kept };
}

/** A new token Secret for `account`; `data` already base64, as Secrets keep it. */
export function tokenSecret(account: ServiceAccount, name: string, data: Readonly<Record<string, string>>): Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: SERVICE_ACCOUNT_TOKEN_TYPE,
    metadata: {
      name,
      namespace: account.metadata?.namespace ?? '',
      annotations: { [SERVICE_ACCOUNT_NAME_ANNOTATION]: account.metadata?.name ?? '', [SERVICE_ACCOUNT_UID_ANNOTATION]: account.metadata?.uid ?? '' },
    },
    data: { ...data },
  };
}

export type SecretPlan = { readonly action: 'none' } | { readonly action: 'delete' } | { readonly action: 'populate' };

/**
 * What becomes of a token Secret given its account as it is (undefined:
 * gone): deleted when the account is gone or is another one (uid), given
 * a token when it has none (a token Secret a user made for the account).
 */
export function planTokenSecret(secret: Secret, account: ServiceAccount | undefined): SecretPlan {
  if (accountNameOf(secret) === undefined || secret.metadata?.deletionTimestamp !== undefined) return { action: 'none' };
  const uid = secret.metadata?.annotations?.[SERVICE_ACCOUNT_UID_ANNOTATION];
  if (account === undefined || (uid !== undefined && uid !== '' && uid !== account.metadata?.uid)) return { action: 'delete' };
  if ((secret.data?.token ?? '') === '' || uid === undefined || uid === '') return { action: 'populate' };
  return { action: 'none' };
}
