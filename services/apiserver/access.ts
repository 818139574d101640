// Who is asking, and may they: authentication, RBAC authorization and node
// restriction for the resource API, and the admin-only rule for the raw
// etcd API. As Kubernetes does it:
//
// - Authentication: a bearer token from the static token file
//   (--token-auth-file) or a service account's token Secret (legacy
//   kubernetes.io/service-account-token: user system:serviceaccount:NS:NAME
//   in system:serviceaccounts and system:serviceaccounts:NS), else a client
//   certificate verified against the cluster CA (CN is the user, each O a
//   group). A join token ("ID.SECRET", `mastctl token create`) whose
//   bootstrap-token Secret in kube-system is unexpired authenticates as
//   system:bootstrap:ID in system:bootstrappers and its extra groups (the
//   join service checks those; RBAC grants them nothing).
//   No credentials, or a token nobody has, is UNAUTHENTICATED.
//   Everyone authenticated is also in system:authenticated.
// - Authorization: RBAC over the Roles and bindings in the watch cache.
//   system:masters may do anything.
// - Node restriction: an agent (user system:node:NAME in system:nodes) may
//   only write its own Node and node Lease, only the status of pods
//   bound to it (and delete them), and the PodMetrics of those pods.
//
// With --insecure there is none of this: every caller is an admin.

import * as grpc from '@grpc/grpc-js';
import { kindInfo, listPrefix, objectKey, type KindInfo } from '../client/kinds.js';
import { ApiError, type ApiObject } from './registry.js';
import { authorize, forbiddenMessage, NODES_GROUP, serviceAccountUsername, SUPERUSER_GROUP, type ClusterRole, type ClusterRoleBinding, type RbacSource, type RequestAttributes, type Role, type RoleBinding, type UserInfo } from './rbac.js';
import type { WatchCache } from './watch-cache.js';
import { isJsonObject } from './schema.js';
import { BOOTSTRAPPERS_GROUP, BOOTSTRAP_TOKEN_NAMESPACE, BOOTSTRAP_USER_PREFIX, bootstrapTokenSecretName, parseBootstrapToken, readBootstrapTokenSecret } from '../pki/index.js';
import { timingSafeEqual } from 'node:crypto';

export interface TokenUser {
  readonly name: string;
  readonly uid: string;
  readonly groups: readonly string[];
}

/** Where node agents keep their heartbeat Leases (Kubernetes' namespace). */
export const NODE_LEASE_NAMESPACE = 'kube-node-lease';
const NODE_USER_PREFIX = 'system:node:';
const AUTHENTICATED_GROUP = 'system:authenticated';
const SERVICE_ACCOUNTS_GROUP = 'system:serviceaccounts';
/** The legacy token Secret of a service account, as Kubernetes' tokens controller makes it. */
export const SERVICE_ACCOUNT_TOKEN_TYPE = 'kubernetes.io/service-account-token';
export const SERVICE_ACCOUNT_NAME_ANNOTATION = 'kubernetes.io/service-account.name';
export const SERVICE_ACCOUNT_UID_ANNOTATION = 'kubernetes.io/service-account.uid';

/** The caller of an --insecure master: an admin. */
const INSECURE_USER: UserInfo = { name: 'system:admin', groups: [SUPERUSER_GROUP, AUTHENTICATED_GROUP] };

/** One request to the resource API, as authorization sees it. */
export interface AccessRequest {
  readonly verb: 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';
  readonly info: KindInfo;
  readonly namespace: string;
  readonly name?: string;
  readonly subresource?: 'status' | 'binding' | 'log' | 'exec';
  /** For writes: the object as it is stored now (node restriction looks at a pod's node). */
  readonly current?: ApiObject | undefined;
}

function apiGroupOf(info: KindInfo): string {
  return info.apiVersion.includes('/') ? info.apiVersion.split('/')[0]! : '';
}

function subjectNames(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** RBAC objects read from the watch cache. */
class CachedRbac implements RbacSource {
  constructor(private readonly cache: WatchCache) {}

  clusterRole(name: string): ClusterRole | undefined {
    const info = kindInfo('ClusterRole')!;
    return this.cache.get(info, objectKey(info, '', name))?.object as unknown as ClusterRole | undefined;
  }

  role(namespace: string, name: string): Role | undefined {
    const info = kindInfo('Role')!;
    return this.cache.get(info, objectKey(info, namespace, name))?.object as unknown as Role | undefined;
  }

  clusterRoleBindings(): Iterable<ClusterRoleBinding> {
    return this.cache.list(kindInfo('ClusterRoleBinding')!, undefined).map((cached) => cached.object as unknown as ClusterRoleBinding);
  }

  roleBindings(namespace: string): Iterable<RoleBinding> {
    // RoleBindings grant only inside their namespace: a cluster-wide request has none.
    if (namespace === '') return [];
    return this.cache.list(kindInfo('RoleBinding')!, namespace).map((cached) => cached.object as unknown as RoleBinding);
  }
}

/**
 * Service-account tokens: an index token → Secret over the watch cache,
 * kept in step with every change the cache applies, so authenticating costs
 * no store read and a token stops working as soon as its Secret, or its
 * ServiceAccount, is deleted (or recreated with another uid). A token
 * found in two Secrets is nobody's.
 */
export class ServiceAccountTokens {
  private readonly secretsOfToken = new Map<string, Set<string>>();
  private readonly tokenOfSecret = new Map<string, string>();
  private readonly secrets = kindInfo('Secret')!;
  private readonly accounts = kindInfo('ServiceAccount')!;

  constructor(private readonly cache: WatchCache) {
    const prefix = listPrefix(this.secrets, undefined);
    cache.onChange((key, _before, after) => {
      if (key === undefined) this.rebuild();
      else if (key.startsWith(prefix)) this.index(key, after?.object);
    });
    this.rebuild();
  }

  /** The service account a token belongs to, if it is one's. */
  user(token: string): UserInfo | undefined {
    const keys = this.secretsOfToken.get(token);
    const key = keys?.size === 1 ? [...keys][0]! : undefined;
    const secret = key === undefined ? undefined : this.cache.get(this.secrets, key)?.object;
    if (secret === undefined || secret.metadata.deletionTimestamp !== undefined) return undefined;
    const annotations = isJsonObject(secret.metadata.annotations) ? secret.metadata.annotations : {};
    const name = annotations[SERVICE_ACCOUNT_NAME_ANNOTATION];
    const uid = annotations[SERVICE_ACCOUNT_UID_ANNOTATION];
    const namespace = String(secret.metadata.namespace ?? '');
    if (typeof name !== 'string' || name === '' || typeof uid !== 'string' || uid === '') return undefined;
    const account = this.cache.get(this.accounts, objectKey(this.accounts, namespace, name))?.object;
    if (account === undefined || account.metadata.deletionTimestamp !== undefined || account.metadata.uid !== uid) return undefined;
    return { name: serviceAccountUsername(namespace, name), uid: String(account.metadata.uid ?? ''), groups: [SERVICE_ACCOUNTS_GROUP, `${SERVICE_ACCOUNTS_GROUP}:${namespace}`, AUTHENTICATED_GROUP] };
  }

  private rebuild(): void {
    this.secretsOfToken.clear();
    this.tokenOfSecret.clear();
    for (const cached of this.cache.list(this.secrets, undefined)) this.index(objectKey(this.secrets, String(cached.object.metadata.namespace ?? ''), String(cached.object.metadata.name ?? '')), cached.object);
  }

  private index(key: string, secret: ApiObject | undefined): void {
    const old = this.tokenOfSecret.get(key);
    if (old !== undefined) {
      this.tokenOfSecret.delete(key);
      const keys = this.secretsOfToken.get(old);
      keys?.delete(key);
      if (keys?.size === 0) this.secretsOfToken.delete(old);
    }
    const data = secret?.type === SERVICE_ACCOUNT_TOKEN_TYPE && isJsonObject(secret.data) ? secret.data.token : undefined;
    if (typeof data !== 'string' || data === '') return;
    const token = Buffer.from(data, 'base64').toString('utf8');
    if (token === '') return;
    this.tokenOfSecret.set(key, token);
    const keys = this.secretsOfToken.get(token) ?? new Set<string>();
    keys.add(key);
    this.secretsOfToken.set(token, keys);
  }
}

/**
 * Join tokens: the bootstrap-token Secret named by the token's id, read from
 * the watch cache at each use, so a deleted or expired token stops working
 * at once.
 */
export class BootstrapTokens {
  private readonly secrets = kindInfo('Secret')!;

  constructor(
    private readonly cache: WatchCache,
    private readonly now: () => number,
  ) {}

  /** The user of a join token, undefined if `token` is not one; throws Unauthorized for a bad, expired or unknown one. */
  user(token: string): UserInfo | undefined {
    const parsed = parseBootstrapToken(token);
    if (parsed === undefined) return undefined;
    const secret = this.cache.get(this.secrets, objectKey(this.secrets, BOOTSTRAP_TOKEN_NAMESPACE, bootstrapTokenSecretName(parsed.id)))?.object;
    const record = secret === undefined || secret.metadata.deletionTimestamp !== undefined ? undefined : readBootstrapTokenSecret(secret);
    if (record === undefined || typeof record === 'string' || !record.authentication || !sameText(record.secret, parsed.secret)) throw new ApiError('Unauthorized', 'invalid bearer token');
    if (record.expiresAtMs !== undefined && record.expiresAtMs <= this.now()) throw new ApiError('Unauthorized', `join token ${parsed.id} expired at ${new Date(record.expiresAtMs).toISOString()} (mastctl token create makes another)`);
    return { name: `${BOOTSTRAP_USER_PREFIX}${parsed.id}`, groups: [BOOTSTRAPPERS_GROUP, ...record.groups, AUTHENTICATED_GROUP] };
  }
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

export interface AccessOptions {
  readonly insecure: boolean;
  /** Bearer token → user (from the token file). */
  readonly tokens: ReadonlyMap<string, TokenUser>;
  /** Wall-clock ms, for join tokens' expiry (tests); default Date.now. */
  readonly now?: () => number;
}

export class Access {
  private readonly rbac: CachedRbac;
  private readonly serviceAccounts: ServiceAccountTokens | undefined;
  private readonly bootstrapTokens: BootstrapTokens;

  constructor(
    private readonly cache: WatchCache,
    private readonly options: AccessOptions,
  ) {
    this.rbac = new CachedRbac(cache);
    this.serviceAccounts = options.insecure ? undefined : new ServiceAccountTokens(cache);
    this.bootstrapTokens = new BootstrapTokens(cache, options.now ?? Date.now);
  }

  /** The user of a join token: also for --insecure masters, whose join service still needs to know the token's role. */
  joinUser(metadata: grpc.Metadata): UserInfo {
    const header = metadata.get('authorization')[0];
    const match = header === undefined ? null : /^Bearer\s+(\S+)$/i.exec(String(header));
    if (match === null) throw new ApiError('Unauthorized', 'a join needs a join token (mast join --token ID.SECRET; mastctl token create makes one)');
    const user = this.bootstrapTokens.user(match[1]!);
    if (user === undefined) throw new ApiError('Unauthorized', 'the token is not a join token (ID.SECRET, as mastctl token create prints)');
    return user;
  }

  get insecure(): boolean {
    return this.options.insecure;
  }

  /** The caller of a gRPC call (ApiError Unauthorized without valid credentials). */
  authenticate(metadata: grpc.Metadata, authContext: ReturnType<grpc.ServerInterceptingCallInterface['getAuthContext']> | null): UserInfo {
    if (this.options.insecure) return INSECURE_USER;
    const header = metadata.get('authorization')[0];
    if (header !== undefined) {
      const match = /^Bearer\s+(\S+)$/i.exec(String(header));
      if (match === null) throw new ApiError('Unauthorized', 'the authorization metadata is not "Bearer TOKEN"');
      const user = this.options.tokens.get(match[1]!);
      if (user !== undefined) return { name: user.name, uid: user.uid, groups: [...user.groups, AUTHENTICATED_GROUP] };
      const account = this.serviceAccounts?.user(match[1]!) ?? this.bootstrapTokens.user(match[1]!);
      if (account === undefined) throw new ApiError('Unauthorized', 'invalid bearer token');
      return account;
    }
    const certificate = authContext?.sslPeerCertificate;
    if (certificate !== undefined) {
      // grpc-js hands over only certificates the TLS handshake verified against the cluster CA.
      const [name] = subjectNames(certificate.subject.CN);
      if (name !== undefined && name !== '') return { name, groups: [...subjectNames(certificate.subject.O), AUTHENTICATED_GROUP] };
    }
    throw new ApiError('Unauthorized', 'no credentials: present a client certificate signed by the cluster CA or a bearer token (mastctl reads them from its config)');
  }

  /** Refuse (Forbidden) what RBAC or node restriction does not allow. */
  authorize(user: UserInfo, request: AccessRequest): void {
    if (this.options.insecure) return;
    const attributes: RequestAttributes = {
      user,
      verb: request.verb,
      apiGroup: apiGroupOf(request.info),
      resource: request.info.resource,
      ...(request.subresource === undefined ? {} : { subresource: request.subresource }),
      namespace: request.info.namespaced ? request.namespace : '',
      ...(request.name === undefined || request.name === '' ? {} : { name: request.name }),
    };
    const decision = authorize(this.rbac, attributes);
    if (!decision.allowed) throw new ApiError('Forbidden', forbiddenMessage(attributes, decision.reason));
    const pods = kindInfo('Pod')!;
    const restricted = nodeRestriction(user, request, (namespace, name) => this.cache.get(pods, objectKey(pods, namespace, name))?.object);
    if (restricted !== undefined) throw new ApiError('Forbidden', `${forbiddenMessage(attributes)}: ${restricted}`);
  }

  /** The raw etcd API is for cluster admins only once auth is on (as with etcd's own auth). */
  requireAdmin(user: UserInfo): void {
    if (this.options.insecure || user.groups.includes(SUPERUSER_GROUP)) return;
    throw new ApiError('Forbidden', `User "${user.name}" cannot use the etcd API: raw key-value access is for cluster admins (group ${SUPERUSER_GROUP}); use the resource API`);
  }
}

/** The node an agent's user is (system:node:NAME in system:nodes), if it is one. */
export function nodeNameOf(user: UserInfo): string | undefined {
  if (!user.name.startsWith(NODE_USER_PREFIX) || !user.groups.includes(NODES_GROUP)) return undefined;
  return user.name.slice(NODE_USER_PREFIX.length);
}

function boundTo(pod: ApiObject | undefined, node: string): boolean {
  const spec = pod?.spec;
  return typeof spec === 'object' && spec !== null && !Array.isArray(spec) && spec.nodeName === node;
}

/**
 * Why a node may not make this write (undefined: it may, or the caller is
 * not a node). `podOf` finds a stored pod: a PodMetrics is judged by the
 * pod of the same name.
 */
export function nodeRestriction(user: UserInfo, request: AccessRequest, podOf: (namespace: string, name: string) => ApiObject | undefined = () => undefined): string | undefined {
  const node = nodeNameOf(user);
  if (node === undefined || request.verb === 'get' || request.verb === 'list' || request.verb === 'watch') return undefined;
  switch (request.info.kind) {
    case 'Node':
      return request.name === node ? undefined : `node "${node}" can only modify its own Node object`;
    case 'Lease':
      return request.namespace === NODE_LEASE_NAMESPACE && request.name === node ? undefined : `node "${node}" can only modify its own Lease, ${NODE_LEASE_NAMESPACE}/${node}`;
    case 'Pod': {
      const boundHere = boundTo(request.current, node);
      if (request.verb === 'create') return `node "${node}" cannot create pods`;
      if (request.verb === 'delete') return boundHere ? undefined : `node "${node}" can only delete pods bound to it`;
      if (request.subresource === 'status') return boundHere ? undefined : `node "${node}" can only update the status of pods with spec.nodeName set to itself`;
      return `node "${node}" can only update the status of pods, not their spec`;
    }
    case 'NodeMetrics':
      return request.name === node ? undefined : `node "${node}" can only write its own NodeMetrics`;
    case 'PodMetrics': {
      const pod = podOf(request.namespace, request.name ?? '');
      // The metrics of a pod that is gone may go too (the agent cleans up after its pods).
      if (boundTo(pod, node) || (request.verb === 'delete' && pod === undefined)) return undefined;
      return `node "${node}" can only write the PodMetrics of pods bound to it`;
    }
    default:
      return undefined;
  }
}

/**
 * A server interceptor that lets only cluster admins call the etcd API
 * (every service whose path starts with one of `prefixes`); the rest pass.
 */
export function adminOnlyInterceptor(access: Access, prefixes: readonly string[], toStatus: (error: unknown) => Partial<grpc.StatusObject>): grpc.ServerInterceptor {
  return (method, call) => {
    if (access.insecure || !prefixes.some((prefix) => method.path.startsWith(prefix))) return new grpc.ServerInterceptingCall(call);
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        try {
          access.requireAdmin(access.authenticate(metadata, call.getAuthContext()));
        } catch (error) {
          const status = toStatus(error);
          call.sendStatus({ code: status.code ?? grpc.status.PERMISSION_DENIED, details: status.details ?? 'forbidden', metadata: status.metadata ?? new grpc.Metadata() });
          return;
        }
        next(metadata);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, new grpc.ResponderBuilder().withStart((next) => next(listener)).build());
  };
}
