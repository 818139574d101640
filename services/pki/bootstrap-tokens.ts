// Join tokens, in Kubernetes' bootstrap-token format: "ID.SECRET" (6 and 16
// characters of [a-z0-9]) stored as the Secret kube-system/bootstrap-token-ID
// of type bootstrap.kubernetes.io/token, with an expiration. A master accepts
// one as a bearer token for the user system:bootstrap:ID in the groups
// system:bootstrappers and the token's auth-extra-groups; mast's join
// service lets the group system:bootstrappers:mast:node get a node's client
// certificate and system:bootstrappers:mast:master a new master's
// credentials. Pure: the clock is the caller's.

import { randomInt } from 'node:crypto';

export const BOOTSTRAP_TOKEN_TYPE = 'bootstrap.kubernetes.io/token';
export const BOOTSTRAP_TOKEN_NAMESPACE = 'kube-system';
export const BOOTSTRAP_TOKEN_SECRET_PREFIX = 'bootstrap-token-';
export const BOOTSTRAPPERS_GROUP = 'system:bootstrappers';
export const BOOTSTRAP_USER_PREFIX = 'system:bootstrap:';

export type JoinRole = 'node' | 'master';
export const JOIN_GROUPS: Readonly<Record<JoinRole, string>> = {
  node: 'system:bootstrappers:mast:node',
  master: 'system:bootstrappers:mast:master',
};

const TOKEN_PATTERN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export interface BootstrapToken {
  readonly id: string;
  readonly secret: string;
}

/** What a token Secret says, once checked. */
export interface BootstrapTokenRecord extends BootstrapToken {
  /** Epoch ms; undefined: never expires. */
  readonly expiresAtMs: number | undefined;
  readonly groups: readonly string[];
  readonly description: string;
  readonly authentication: boolean;
}

export function formatBootstrapToken(token: BootstrapToken): string {
  return `${token.id}.${token.secret}`;
}

/** The token in "ID.SECRET", or undefined if the text is not one. */
export function parseBootstrapToken(text: string): BootstrapToken | undefined {
  const match = TOKEN_PATTERN.exec(text);
  return match === null ? undefined : { id: match[1]!, secret: match[2]! };
}

function randomText(length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) text += ALPHABET[randomInt(ALPHABET.length)];
  return text;
}

/** A new random token (about 83 bits in the secret, as Kubernetes'). */
export function newBootstrapToken(): BootstrapToken {
  return { id: randomText(6), secret: randomText(16) };
}

export function bootstrapTokenSecretName(id: string): string {
  return `${BOOTSTRAP_TOKEN_SECRET_PREFIX}${id}`;
}

export interface TokenSecretOptions {
  readonly role: JoinRole;
  /** Epoch ms; undefined: never expires. */
  readonly expiresAtMs?: number | undefined;
  readonly description?: string;
}

/** The Secret that makes `token` valid (data base64, as the API stores Secrets). */
export function bootstrapTokenSecret(token: BootstrapToken, options: TokenSecretOptions): Record<string, unknown> {
  const data: Record<string, string> = {
    'token-id': token.id,
    'token-secret': token.secret,
    'usage-bootstrap-authentication': 'true',
    'auth-extra-groups': JOIN_GROUPS[options.role],
  };
  if (options.expiresAtMs !== undefined) data.expiration = new Date(options.expiresAtMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (options.description !== undefined && options.description !== '') data.description = options.description;
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: bootstrapTokenSecretName(token.id), namespace: BOOTSTRAP_TOKEN_NAMESPACE },
    type: BOOTSTRAP_TOKEN_TYPE,
    data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value, 'utf8').toString('base64')])),
  };
}

/**
 * Reads a token Secret (as the API returns it: data base64). A string
 * result says why it is not a valid token Secret.
 */
export function readBootstrapTokenSecret(secret: { readonly type?: unknown; readonly metadata?: { readonly name?: unknown } | undefined; readonly data?: unknown }): BootstrapTokenRecord | string {
  if (secret.type !== BOOTSTRAP_TOKEN_TYPE) return `type is ${JSON.stringify(secret.type)}, not ${BOOTSTRAP_TOKEN_TYPE}`;
  const data = typeof secret.data === 'object' && secret.data !== null ? (secret.data as Record<string, unknown>) : {};
  const field = (key: string): string | undefined => (typeof data[key] === 'string' ? Buffer.from(data[key] as string, 'base64').toString('utf8') : undefined);
  const id = field('token-id') ?? '';
  const secretPart = field('token-secret') ?? '';
  if (parseBootstrapToken(`${id}.${secretPart}`) === undefined) return 'token-id or token-secret is missing or malformed';
  if (secret.metadata?.name !== bootstrapTokenSecretName(id)) return `the Secret's name is not ${bootstrapTokenSecretName(id)}`;
  const expiration = field('expiration');
  const expiresAtMs = expiration === undefined ? undefined : Date.parse(expiration);
  if (expiresAtMs !== undefined && !Number.isFinite(expiresAtMs)) return `expiration ${JSON.stringify(expiration)} is not an RFC 3339 time`;
  const groups = (field('auth-extra-groups') ?? '')
    .split(',')
    .map((group) => group.trim())
    .filter((group) => group !== '');
  const foreign = groups.find((group) => !group.startsWith(`${BOOTSTRAPPERS_GROUP}:`));
  if (foreign !== undefined) return `auth-extra-groups may only name ${BOOTSTRAPPERS_GROUP}:* groups, not ${JSON.stringify(foreign)}`;
  return { id, secret: secretPart, expiresAtMs, groups, description: field('description') ?? '', authentication: field('usage-bootstrap-authentication') === 'true' };
}

/** The join role a token's groups allow, if any (master tokens may join masters only). */
export function joinRoleOf(groups: readonly string[]): JoinRole | undefined {
  if (groups.includes(JOIN_GROUPS.master)) return 'master';
  if (groups.includes(JOIN_GROUPS.node)) return 'node';
  return undefined;
}

/** "24h", "30m", "90s", "2h30m" or "0" (never expires) → ms; undefined when not a duration. */
export function parseTokenTtl(text: string): number | undefined {
  if (text === '0') return 0;
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (match === null || text === '') return undefined;
  const [hours, minutes, seconds] = [match[1], match[2], match[3]].map((part) => Number(part ?? 0)) as [number, number, number];
  return ((hours * 60 + minutes) * 60 + seconds) * 1000;
}
