// RBAC authorization (rbac.authorization.k8s.io/v1) as a pure function, the
// way Kubernetes' RBAC authorizer decides:
//   - members of the superuser group "system:masters" may do anything;
//   - every ClusterRoleBinding whose subjects include the user grants its
//     ClusterRole's rules cluster-wide and in every namespace;
//   - every RoleBinding in namespace N whose subjects include the user grants
//     the rules of its Role (in N) or ClusterRole, for requests in N only;
//   - a request is allowed when any granted rule matches its verb, API group,
//     resource (and subresource) and name; otherwise it is denied. A binding
//     whose role is missing grants nothing (the miss is named in the reason).
// Rule matching follows pkg/apis/rbac/v1/evaluation_helpers.go: "*" matches
// any verb, group or resource (subresources included), "*/status" matches the
// status subresource of any resource, "pods/status" matches exactly, and a
// rule naming resourceNames matches only requests for one of those names.
// As in Kubernetes, "pods/*" is not a wildcard for the subresources of pods.
// forbiddenMessage words denials as the API server does. The bootstrap policy
// is the set of ClusterRoles and ClusterRoleBindings a master creates at
// start-up when absent. No I/O, no clocks: the caller supplies an RbacSource
// (a read-only view of the stored RBAC objects, usually a cache).

export const RBAC_API_GROUP = 'rbac.authorization.k8s.io';
export const RBAC_API_VERSION = 'rbac.authorization.k8s.io/v1';
/** Members of this group pass every authorization check. */
export const SUPERUSER_GROUP = 'system:masters';
/** The group every node agent's identity carries. */
export const NODES_GROUP = 'system:nodes';
const SERVICE_ACCOUNT_PREFIX = 'system:serviceaccount:';

// ---- The RBAC object shapes (field names as in proto/resources/v1/rbac.proto)

export interface RbacObjectMeta {
  readonly name: string;
  readonly namespace?: string | undefined;
  readonly labels?: Readonly<Record<string, string>> | undefined;
}

/** Empty or absent lists match nothing (except resourceNames: absent or empty matches every name). */
export interface PolicyRule {
  readonly verbs?: readonly string[] | undefined;
  readonly apiGroups?: readonly string[] | undefined;
  readonly resources?: readonly string[] | undefined;
  readonly resourceNames?: readonly string[] | undefined;
  readonly nonResourceURLs?: readonly string[] | undefined;
}

export interface Role {
  readonly apiVersion: string;
  readonly kind: 'Role';
  readonly metadata: RbacObjectMeta;
  readonly rules?: readonly PolicyRule[] | undefined;
}

export interface ClusterRole {
  readonly apiVersion: string;
  readonly kind: 'ClusterRole';
  readonly metadata: RbacObjectMeta;
  readonly rules?: readonly PolicyRule[] | undefined;
}

export type SubjectKind = 'User' | 'Group' | 'ServiceAccount';

export interface Subject {
  readonly kind: SubjectKind;
  readonly name: string;
  /** ServiceAccount only; in a RoleBinding an empty namespace means the binding's own. */
  readonly namespace?: string | undefined;
  /** "rbac.authorization.k8s.io" for User and Group, "" for ServiceAccount; not consulted. */
  readonly apiGroup?: string | undefined;
}

export interface RoleRef {
  readonly apiGroup: string;
  readonly kind: 'Role' | 'ClusterRole';
  readonly name: string;
}

export interface RoleBinding {
  readonly apiVersion: string;
  readonly kind: 'RoleBinding';
  readonly metadata: RbacObjectMeta;
  readonly subjects?: readonly Subject[] | undefined;
  readonly roleRef: RoleRef;
}

export interface ClusterRoleBinding {
  readonly apiVersion: string;
  readonly kind: 'ClusterRoleBinding';
  readonly metadata: RbacObjectMeta;
  readonly subjects?: readonly Subject[] | undefined;
  readonly roleRef: RoleRef;
}

// ---- Requests and decisions

export interface UserInfo {
  readonly name: string;
  readonly uid?: string | undefined;
  readonly groups: readonly string[];
}

export interface RequestAttributes {
  readonly user: UserInfo;
  /** get list watch create update patch delete deletecollection (lowercase). */
  readonly verb: string;
  /** "" for the core group. */
  readonly apiGroup: string;
  /** Plural, lowercase: "pods", "deployments", ... */
  readonly resource: string;
  /** "status", "scale", ...; absent or "" for the resource itself. */
  readonly subresource?: string | undefined;
  /** "" for cluster-scoped resources and all-namespace requests. */
  readonly namespace: string;
  /** Absent or "" when the request names no object (list, watch, create without a name). */
  readonly name?: string | undefined;
}

/** A read-only view of the stored RBAC objects. */
export interface RbacSource {
  clusterRole(name: string): ClusterRole | undefined;
  role(namespace: string, name: string): Role | undefined;
  clusterRoleBindings(): Iterable<ClusterRoleBinding>;
  roleBindings(namespace: string): Iterable<RoleBinding>;
}

/**
 * On allow, the reason names what allowed it. On deny, the reason is "" unless
 * some binding for the user could not be resolved (e.g. its role is missing),
 * in which case it lists those failures as Kubernetes does ("RBAC: ...").
 */
export type Decision = { readonly allowed: true; readonly reason: string } | { readonly allowed: false; readonly reason: string };

// ---- Subjects

/** The user name a service account authenticates as. */
export function serviceAccountUsername(namespace: string, name: string): string {
  return `${SERVICE_ACCOUNT_PREFIX}${namespace}:${name}`;
}

/** Whether a binding subject names the user. bindingNamespace is "" for ClusterRoleBindings. */
function subjectMatches(subject: Subject, user: UserInfo, bindingNamespace: string): boolean {
  switch (subject.kind) {
    case 'User':
      return user.name === subject.name;
    case 'Group':
      return user.groups.includes(subject.name);
    case 'ServiceAccount': {
      const namespace = nonEmpty(subject.namespace) ?? bindingNamespace;
      return namespace !== '' && user.name === serviceAccountUsername(namespace, subject.name);
    }
    default:
      return false;
  }
}

function firstMatchingSubject(subjects: readonly Subject[] | undefined, user: UserInfo, bindingNamespace: string): Subject | undefined {
  return (subjects ?? []).find((subject) => subjectMatches(subject, user, bindingNamespace));
}

// ---- Rules

function listMatches(values: readonly string[] | undefined, wanted: string): boolean {
  return (values ?? []).some((value) => value === '*' || value === wanted);
}

function resourceMatches(resources: readonly string[] | undefined, resource: string, subresource: string): boolean {
  const combined = subresource === '' ? resource : `${resource}/${subresource}`;
  return (resources ?? []).some(
    (ruleResource) => ruleResource === '*' || ruleResource === combined || (subresource !== '' && ruleResource === `*/${subresource}`),
  );
}

function resourceNameMatches(resourceNames: readonly string[] | undefined, name: string): boolean {
  return resourceNames === undefined || resourceNames.length === 0 || resourceNames.includes(name);
}

/** Whether one policy rule allows the request. */
export function ruleAllows(rule: PolicyRule, request: RequestAttributes): boolean {
  return (
    listMatches(rule.verbs, request.verb) &&
    listMatches(rule.apiGroups, request.apiGroup) &&
    resourceMatches(rule.resources, request.resource, request.subresource ?? '') &&
    resourceNameMatches(rule.resourceNames, request.name ?? '')
  );
}

// ---- Bindings to rules

/** The rules one binding grants, with a description of where they came from; or why they could not be found. */
type Grant = { readonly source: string; readonly rules: readonly PolicyRule[] } | { readonly error: string };

function notFound(resource: string, name: string): { readonly error: string } {
  return { error: `${resource}.${RBAC_API_GROUP} ${quote(name)} not found` };
}

/** Resolves a roleRef as Kubernetes' GetRoleReferenceRules does; bindingNamespace is "" for ClusterRoleBindings. */
function roleRefRules(source: RbacSource, roleRef: RoleRef, bindingNamespace: string): readonly PolicyRule[] | { readonly error: string } {
  switch (roleRef.kind) {
    case 'Role': {
      const role = bindingNamespace === '' ? undefined : source.role(bindingNamespace, roleRef.name);
      return role === undefined ? notFound('role', roleRef.name) : (role.rules ?? []);
    }
    case 'ClusterRole': {
      const clusterRole = source.clusterRole(roleRef.name);
      return clusterRole === undefined ? notFound('clusterrole', roleRef.name) : (clusterRole.rules ?? []);
    }
    default:
      return { error: `unsupported role reference kind: ${quote((roleRef as { kind: string }).kind)}` };
  }
}

function describeSubject(subject: Subject, bindingNamespace: string): string {
  if (subject.kind === 'ServiceAccount') {
    return `${subject.kind} ${quote(`${subject.name}/${nonEmpty(subject.namespace) ?? bindingNamespace}`)}`;
  }
  return `${subject.kind} ${quote(subject.name)}`;
}

function describeClusterRoleBinding(binding: ClusterRoleBinding, subject: Subject): string {
  return `ClusterRoleBinding ${quote(binding.metadata.name)} of ${binding.roleRef.kind} ${quote(binding.roleRef.name)} to ${describeSubject(subject, '')}`;
}

/** Kubernetes writes a RoleBinding as "name/namespace" here. */
function describeRoleBinding(binding: RoleBinding, subject: Subject, namespace: string): string {
  return `RoleBinding ${quote(`${binding.metadata.name}/${namespace}`)} of ${binding.roleRef.kind} ${quote(binding.roleRef.name)} to ${describeSubject(subject, namespace)}`;
}

function grantOf(rules: readonly PolicyRule[] | { readonly error: string }, describe: () => string): Grant {
  return 'error' in rules ? rules : { source: describe(), rules };
}

/**
 * The grants that apply to the user for a request in namespace ("" for
 * cluster scope), in Kubernetes' order: ClusterRoleBindings first, then the
 * namespace's RoleBindings. Lazy, so a decision stops at the first allow.
 */
function* grantsFor(source: RbacSource, user: UserInfo, namespace: string): Generator<Grant> {
  for (const binding of source.clusterRoleBindings()) {
    const subject = firstMatchingSubject(binding.subjects, user, '');
    if (subject === undefined) continue;
    yield grantOf(roleRefRules(source, binding.roleRef, ''), () => describeClusterRoleBinding(binding, subject));
  }
  if (namespace === '') return;
  for (const binding of source.roleBindings(namespace)) {
    const subject = firstMatchingSubject(binding.subjects, user, namespace);
    if (subject === undefined) continue;
    yield grantOf(roleRefRules(source, binding.roleRef, namespace), () => describeRoleBinding(binding, subject, namespace));
  }
}

/** Kubernetes' error aggregate: one message as is, several (deduplicated) as "[a, b]". */
function aggregate(messages: readonly string[]): string {
  const distinct = [...new Set(messages)];
  return distinct.length === 1 ? (distinct[0] ?? '') : `[${distinct.join(', ')}]`;
}

// ---- Decisions

/** Decides a request against the RBAC objects in source. */
export function authorize(source: RbacSource, request: RequestAttributes): Decision {
  if (request.user.groups.includes(SUPERUSER_GROUP)) {
    return { allowed: true, reason: `allowed: user ${quote(request.user.name)} is in the superuser group ${quote(SUPERUSER_GROUP)}` };
  }
  const errors: string[] = [];
  for (const grant of grantsFor(source, request.user, request.namespace)) {
    if ('error' in grant) errors.push(grant.error);
    else if (grant.rules.some((rule) => ruleAllows(rule, request))) return { allowed: true, reason: `RBAC: allowed by ${grant.source}` };
  }
  return { allowed: false, reason: errors.length === 0 ? '' : `RBAC: ${aggregate(errors)}` };
}

/**
 * The API server's message for a denied request, e.g.
 *   pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"
 *   deployments.apps "web" is forbidden: User "bob" cannot get resource "deployments" in API group "apps" in the namespace "prod"
 *   nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope
 * A non-empty reason (a denied Decision's) is appended after ": ".
 */
export function forbiddenMessage(request: RequestAttributes, reason = ''): string {
  const subresource = request.subresource ?? '';
  const resource = subresource === '' ? request.resource : `${request.resource}/${subresource}`;
  const scope = request.namespace === '' ? 'at the cluster scope' : `in the namespace ${quote(request.namespace)}`;
  const denial = sanitize(`User ${quote(request.user.name)} cannot ${request.verb} resource ${quote(resource)} in API group ${quote(request.apiGroup)} ${scope}`);
  const detail = reason === '' ? denial : `${denial}: ${reason}`;
  const groupResource = request.apiGroup === '' ? request.resource : `${request.resource}.${request.apiGroup}`;
  const name = request.name ?? '';
  return name === '' ? `${groupResource} is forbidden: ${detail}` : `${groupResource} ${quote(name)} is forbidden: ${detail}`;
}

// ---- Small helpers

/** Go's %q for the strings RBAC quotes (names, groups, resources). */
function quote(text: string): string {
  return JSON.stringify(text);
}

/** The API server escapes these so a denial never reads as HTML. */
function sanitize(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function nonEmpty(text: string | undefined): string | undefined {
  return text === undefined || text === '' ? undefined : text;
}

// ---- Bootstrap policy

const BOOTSTRAP_LABELS: Readonly<Record<string, string>> = { 'kubernetes.io/bootstrapping': 'rbac-defaults' };

const CORE = '';
const APPS = 'apps';
const BATCH = 'batch';
const AUTOSCALING = 'autoscaling';
const COORDINATION = 'coordination.k8s.io';
const METRICS = 'metrics.k8s.io';

const READ = ['get', 'list', 'watch'] as const;
const READ_WRITE = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection'] as const;

function rule(verbs: readonly string[], apiGroups: readonly string[], resources: readonly string[]): PolicyRule {
  return { verbs: [...verbs], apiGroups: [...apiGroups], resources: [...resources] };
}

function clusterRole(name: string, rules: readonly PolicyRule[]): ClusterRole {
  return { apiVersion: RBAC_API_VERSION, kind: 'ClusterRole', metadata: { name, labels: { ...BOOTSTRAP_LABELS } }, rules };
}

function clusterRoleBinding(name: string, subjects: readonly Subject[]): ClusterRoleBinding {
  return {
    apiVersion: RBAC_API_VERSION,
    kind: 'ClusterRoleBinding',
    metadata: { name, labels: { ...BOOTSTRAP_LABELS } },
    subjects,
    roleRef: { apiGroup: RBAC_API_GROUP, kind: 'ClusterRole', name },
  };
}

function group(name: string): Subject {
  return { kind: 'Group', apiGroup: RBAC_API_GROUP, name };
}

function user(name: string): Subject {
  return { kind: 'User', apiGroup: RBAC_API_GROUP, name };
}

/** view: read everything in a namespace except secrets and RBAC objects. */
const VIEW_RULES: readonly PolicyRule[] = [
  rule(READ, [CORE], [
    'pods', 'pods/log', 'pods/status',
    'replicationcontrollers', 'replicationcontrollers/scale', 'replicationcontrollers/status',
    'services', 'services/status', 'endpoints', 'configmaps', 'serviceaccounts',
    'persistentvolumeclaims', 'persistentvolumeclaims/status',
    'resourcequotas', 'resourcequotas/status', 'events',
    // Reading namespaces at namespace scope means reading this namespace.
    'namespaces', 'namespaces/status',
  ]),
  rule(READ, [APPS], [
    'deployments', 'deployments/scale', 'deployments/status',
    'replicasets', 'replicasets/scale', 'replicasets/status',
    'statefulsets', 'statefulsets/scale', 'statefulsets/status',
    'daemonsets', 'daemonsets/status',
  ]),
  rule(READ, [BATCH], ['jobs', 'jobs/status', 'cronjobs', 'cronjobs/status']),
  rule(READ, [AUTOSCALING], ['horizontalpodautoscalers', 'horizontalpodautoscalers/status']),
  // metrics-server's system:aggregated-metrics-reader, aggregated into view, edit and admin.
  rule(READ, [METRICS], ['podmetrics', 'nodemetrics']),
];

/** edit: view, plus reading secrets and writing workloads, services, config and claims; no RBAC, no status, no quotas. */
const EDIT_RULES: readonly PolicyRule[] = [
  ...VIEW_RULES,
  rule(READ_WRITE, [CORE], [
    'pods', 'pods/attach', 'pods/exec', 'pods/portforward', 'pods/proxy',
    'replicationcontrollers', 'replicationcontrollers/scale',
    'services', 'services/proxy', 'configmaps', 'secrets', 'serviceaccounts',
    'persistentvolumeclaims', 'events',
  ]),
  rule(['impersonate'], [CORE], ['serviceaccounts']),
  rule(READ_WRITE, [APPS], [
    'deployments', 'deployments/rollback', 'deployments/scale',
    'replicasets', 'replicasets/scale',
    'statefulsets', 'statefulsets/scale',
    'daemonsets',
  ]),
  rule(READ_WRITE, [BATCH], ['jobs', 'cronjobs']),
  rule(READ_WRITE, [AUTOSCALING], ['horizontalpodautoscalers']),
];

/** admin: edit, plus granting access within the namespace through Roles and RoleBindings. */
const ADMIN_RULES: readonly PolicyRule[] = [...EDIT_RULES, rule(READ_WRITE, [RBAC_API_GROUP], ['roles', 'rolebindings'])];

/** system:node: what a node agent needs to register, run its pods and report on them. */
const NODE_RULES: readonly PolicyRule[] = [
  rule(READ, [CORE], ['pods', 'services', 'endpoints', 'nodes', 'configmaps', 'secrets', 'persistentvolumeclaims', 'persistentvolumes']),
  rule(['create', 'get', 'update', 'patch'], [CORE], ['nodes', 'nodes/status']),
  rule(['update', 'patch'], [CORE], ['pods/status']),
  // Mirror pods.
  rule(['create', 'delete'], [CORE], ['pods']),
  rule(['create', 'get', 'update', 'patch', 'list', 'watch'], [COORDINATION], ['leases']),
  rule(['create', 'patch', 'update'], [CORE], ['events']),
  // The usage of its pods (node restriction: only pods bound to it).
  rule(['get', 'create', 'update', 'patch', 'delete'], [METRICS], ['podmetrics', 'nodemetrics']),
];

/** system:kube-scheduler: watch what placement depends on, bind pods (pods/binding), lead by lease. */
const SCHEDULER_RULES: readonly PolicyRule[] = [
  rule(READ, [CORE], ['pods', 'nodes', 'services', 'namespaces', 'persistentvolumes', 'persistentvolumeclaims', 'replicationcontrollers']),
  rule(READ, [APPS], ['replicasets', 'statefulsets']),
  rule(['create'], [CORE], ['pods/binding']),
  rule(['update', 'patch'], [CORE], ['pods/status']),
  rule(['create', 'patch', 'update'], [CORE], ['events']),
  rule(['get', 'create', 'update'], [COORDINATION], ['leases']),
];

/** system:kube-controller-manager: everything in the workload groups; RBAC objects read-only. */
const CONTROLLER_MANAGER_RULES: readonly PolicyRule[] = [
  rule(['*'], [CORE, APPS, BATCH, AUTOSCALING, COORDINATION], ['*']),
  rule(READ, [RBAC_API_GROUP], ['*']),
  // The horizontal pod autoscaler reads pod usage.
  rule(READ, [METRICS], ['podmetrics']),
  // The namespace controller empties a namespace being deleted of every kind.
  rule(['delete', 'deletecollection'], [RBAC_API_GROUP], ['roles', 'rolebindings']),
  rule(['delete', 'deletecollection'], [METRICS], ['podmetrics']),
];

export const BOOTSTRAP_CLUSTER_ROLES: readonly ClusterRole[] = [
  clusterRole('cluster-admin', [rule(['*'], ['*'], ['*']), { verbs: ['*'], nonResourceURLs: ['*'] }]),
  clusterRole('admin', ADMIN_RULES),
  clusterRole('edit', EDIT_RULES),
  clusterRole('view', VIEW_RULES),
  clusterRole('system:node', NODE_RULES),
  clusterRole('system:kube-scheduler', SCHEDULER_RULES),
  clusterRole('system:kube-controller-manager', CONTROLLER_MANAGER_RULES),
];

/** Each binds the ClusterRole of the same name. admin, edit and view are bound per namespace by users. */
export const BOOTSTRAP_CLUSTER_ROLE_BINDINGS: readonly ClusterRoleBinding[] = [
  clusterRoleBinding('cluster-admin', [group(SUPERUSER_GROUP)]),
  clusterRoleBinding('system:node', [group(NODES_GROUP)]),
  clusterRoleBinding('system:kube-scheduler', [user('system:kube-scheduler')]),
  clusterRoleBinding('system:kube-controller-manager', [user('system:kube-controller-manager')]),
];
