import { expect } from 'chai';
import {
  BOOTSTRAP_CLUSTER_ROLES,
  BOOTSTRAP_CLUSTER_ROLE_BINDINGS,
  RBAC_API_VERSION,
  authorize,
  forbiddenMessage,
  ruleAllows,
  serviceAccountUsername,
} from '../../services/apiserver/rbac.js';
import type {
  ClusterRole,
  ClusterRoleBinding,
  PolicyRule,
  RbacSource,
  RequestAttributes,
  Role,
  RoleBinding,
  RoleRef,
  Subject,
  UserInfo,
} from '../../services/apiserver/rbac.js';

// ---- Fixtures

interface Objects {
  readonly clusterRoles?: readonly ClusterRole[];
  readonly roles?: readonly Role[];
  readonly clusterRoleBindings?: readonly ClusterRoleBinding[];
  readonly roleBindings?: readonly RoleBinding[];
}

/** An in-memory RbacSource over arrays, as a cache would serve them. */
function sourceOf(objects: Objects): RbacSource {
  return {
    clusterRole: (name) => objects.clusterRoles?.find((role) => role.metadata.name === name),
    role: (namespace, name) => objects.roles?.find((role) => role.metadata.namespace === namespace && role.metadata.name === name),
    clusterRoleBindings: () => objects.clusterRoleBindings ?? [],
    roleBindings: (namespace) => (objects.roleBindings ?? []).filter((binding) => binding.metadata.namespace === namespace),
  };
}

function clusterRole(name: string, rules: readonly PolicyRule[]): ClusterRole {
  return { apiVersion: RBAC_API_VERSION, kind: 'ClusterRole', metadata: { name }, rules };
}

function role(namespace: string, name: string, rules: readonly PolicyRule[]): Role {
  return { apiVersion: RBAC_API_VERSION, kind: 'Role', metadata: { name, namespace }, rules };
}

function clusterRoleBinding(name: string, roleName: string, subjects: readonly Subject[]): ClusterRoleBinding {
  return {
    apiVersion: RBAC_API_VERSION,
    kind: 'ClusterRoleBinding',
    metadata: { name },
    subjects,
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
  };
}

function roleBinding(namespace: string, name: string, roleRef: Pick<RoleRef, 'kind' | 'name'>, subjects: readonly Subject[]): RoleBinding {
  return {
    apiVersion: RBAC_API_VERSION,
    kind: 'RoleBinding',
    metadata: { name, namespace },
    subjects,
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', ...roleRef },
  };
}

const userSubject = (name: string): Subject => ({ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name });
const groupSubject = (name: string): Subject => ({ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name });
const serviceAccountSubject = (name: string, namespace?: string): Subject => ({ kind: 'ServiceAccount', name, namespace });

const alice: UserInfo = { name: 'alice', groups: ['system:authenticated'] };
const bob: UserInfo = { name: 'bob', groups: ['system:authenticated', 'developers'] };

function request(user: UserInfo, verb: string, resource: string, fields: Partial<RequestAttributes> = {}): RequestAttributes {
  return { user, verb, apiGroup: '', resource, namespace: 'default', ...fields };
}

function allowed(source: RbacSource, attributes: RequestAttributes): boolean {
  return authorize(source, attributes).allowed;
}

const podReader = clusterRole('pod-reader', [{ verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['pods'] }]);

// ---- Tests

describe('apiserver: RBAC authorization', () => {
  describe('subjects and bindings', () => {
    it('allows members of system:masters everything, even with no RBAC objects at all', () => {
      const empty = sourceOf({});
      const root: UserInfo = { name: 'root', groups: ['system:masters'] };
      const decision = authorize(empty, request(root, 'delete', 'clusterrolebindings', { apiGroup: 'rbac.authorization.k8s.io', namespace: '', name: 'x' }));
      expect(decision).to.deep.equal({ allowed: true, reason: 'allowed: user "root" is in the superuser group "system:masters"' });
      expect(allowed(empty, request(root, 'create', 'pods', { subresource: 'exec', name: 'p' }))).to.equal(true);
      // A user merely named like the group is not a member.
      expect(allowed(empty, request({ name: 'system:masters', groups: [] }, 'get', 'pods', { name: 'p' }))).to.equal(false);
    });

    it('denies by default with an empty reason', () => {
      expect(authorize(sourceOf({}), request(alice, 'get', 'pods', { name: 'p' }))).to.deep.equal({ allowed: false, reason: '' });
    });

    it('a ClusterRoleBinding to a User grants its rules in every namespace and across all namespaces', () => {
      const source = sourceOf({ clusterRoles: [podReader], clusterRoleBindings: [clusterRoleBinding('alice-pods', 'pod-reader', [userSubject('alice')])] });
      const decision = authorize(source, request(alice, 'list', 'pods'));
      expect(decision).to.deep.equal({ allowed: true, reason: 'RBAC: allowed by ClusterRoleBinding "alice-pods" of ClusterRole "pod-reader" to User "alice"' });
      expect(allowed(source, request(alice, 'get', 'pods', { namespace: 'kube-system', name: 'p' }))).to.equal(true);
      expect(allowed(source, request(alice, 'watch', 'pods', { namespace: '' }))).to.equal(true);
      expect(allowed(source, request(alice, 'delete', 'pods', { name: 'p' }))).to.equal(false);
      expect(allowed(source, request(alice, 'list', 'services'))).to.equal(false);
      expect(allowed(source, request(bob, 'list', 'pods'))).to.equal(false);
    });

    it('a ClusterRoleBinding to a Group grants its members only', () => {
      const source = sourceOf({ clusterRoles: [podReader], clusterRoleBindings: [clusterRoleBinding('devs', 'pod-reader', [userSubject('carol'), groupSubject('developers')])] });
      expect(authorize(source, request(bob, 'list', 'pods')).reason).to.equal('RBAC: allowed by ClusterRoleBinding "devs" of ClusterRole "pod-reader" to Group "developers"');
      expect(allowed(source, request(alice, 'list', 'pods'))).to.equal(false);
      // A user whose name equals the group's name is not a member of it.
      expect(allowed(source, request({ name: 'developers', groups: [] }, 'list', 'pods'))).to.equal(false);
    });

    it('a ClusterRoleBinding to a ServiceAccount matches system:serviceaccount:<ns>:<name> only', () => {
      const source = sourceOf({ clusterRoles: [podReader], clusterRoleBindings: [clusterRoleBinding('ci', 'pod-reader', [serviceAccountSubject('deployer', 'ci')])] });
      const deployer: UserInfo = { name: serviceAccountUsername('ci', 'deployer'), groups: ['system:serviceaccounts', 'system:serviceaccounts:ci'] };
      expect(deployer.name).to.equal('system:serviceaccount:ci:deployer');
      expect(authorize(source, request(deployer, 'list', 'pods', { namespace: 'prod' })).reason).to.equal(
        'RBAC: allowed by ClusterRoleBinding "ci" of ClusterRole "pod-reader" to ServiceAccount "deployer/ci"',
      );
      expect(allowed(source, request({ name: 'system:serviceaccount:other:deployer', groups: [] }, 'list', 'pods'))).to.equal(false);
      expect(allowed(source, request({ name: 'deployer', groups: [] }, 'list', 'pods'))).to.equal(false);
    });

    it('a ServiceAccount subject without a namespace never matches in a ClusterRoleBinding', () => {
      const source = sourceOf({ clusterRoles: [podReader], clusterRoleBindings: [clusterRoleBinding('ci', 'pod-reader', [serviceAccountSubject('deployer')])] });
      expect(allowed(source, request({ name: 'system:serviceaccount:default:deployer', groups: [] }, 'list', 'pods'))).to.equal(false);
      expect(allowed(source, request({ name: 'system:serviceaccount::deployer', groups: [] }, 'list', 'pods'))).to.equal(false);
    });

    it('a RoleBinding to a Role grants only in its own namespace, never at cluster scope', () => {
      const source = sourceOf({
        roles: [role('team-a', 'pod-writer', [{ verbs: ['create', 'get'], apiGroups: [''], resources: ['pods'] }])],
        roleBindings: [roleBinding('team-a', 'alice-writes', { kind: 'Role', name: 'pod-writer' }, [userSubject('alice')])],
      });
      expect(authorize(source, request(alice, 'create', 'pods', { namespace: 'team-a' }))).to.deep.equal({
        allowed: true,
        reason: 'RBAC: allowed by RoleBinding "alice-writes/team-a" of Role "pod-writer" to User "alice"',
      });
      expect(allowed(source, request(alice, 'create', 'pods', { namespace: 'team-b' }))).to.equal(false);
      expect(allowed(source, request(alice, 'get', 'pods', { namespace: '', name: 'p' }))).to.equal(false);
      expect(allowed(source, request(bob, 'create', 'pods', { namespace: 'team-a' }))).to.equal(false);
    });

    it('a RoleBinding resolves its Role in the binding namespace, not in another namespace with the same role name', () => {
      const source = sourceOf({
        roles: [role('team-b', 'pod-writer', [{ verbs: ['*'], apiGroups: [''], resources: ['pods'] }])],
        roleBindings: [roleBinding('team-a', 'alice-writes', { kind: 'Role', name: 'pod-writer' }, [userSubject('alice')])],
      });
      expect(authorize(source, request(alice, 'create', 'pods', { namespace: 'team-a' }))).to.deep.equal({
        allowed: false,
        reason: 'RBAC: role.rbac.authorization.k8s.io "pod-writer" not found',
      });
    });

    it('a RoleBinding ServiceAccount subject without a namespace means the binding namespace', () => {
      const source = sourceOf({
        roles: [role('team-a', 'reader', [{ verbs: ['get'], apiGroups: [''], resources: ['configmaps'] }])],
        roleBindings: [roleBinding('team-a', 'builder-reads', { kind: 'Role', name: 'reader' }, [serviceAccountSubject('builder')])],
      });
      const builder: UserInfo = { name: 'system:serviceaccount:team-a:builder', groups: [] };
      expect(authorize(source, request(builder, 'get', 'configmaps', { namespace: 'team-a', name: 'c' })).reason).to.equal(
        'RBAC: allowed by RoleBinding "builder-reads/team-a" of Role "reader" to ServiceAccount "builder/team-a"',
      );
      const otherBuilder: UserInfo = { name: 'system:serviceaccount:team-b:builder', groups: [] };
      expect(allowed(source, request(otherBuilder, 'get', 'configmaps', { namespace: 'team-a', name: 'c' }))).to.equal(false);
    });

    it('a RoleBinding referencing a ClusterRole grants its rules in the binding namespace only', () => {
      const source = sourceOf({
        clusterRoles: [podReader],
        roleBindings: [roleBinding('team-a', 'bob-reads', { kind: 'ClusterRole', name: 'pod-reader' }, [userSubject('bob')])],
      });
      expect(authorize(source, request(bob, 'list', 'pods', { namespace: 'team-a' })).reason).to.equal(
        'RBAC: allowed by RoleBinding "bob-reads/team-a" of ClusterRole "pod-reader" to User "bob"',
      );
      expect(allowed(source, request(bob, 'list', 'pods', { namespace: 'team-b' }))).to.equal(false);
      expect(allowed(source, request(bob, 'list', 'pods', { namespace: '' }))).to.equal(false);
    });

    it('skips bindings whose role is missing, and names every miss when nothing else allows', () => {
      const missingOnly = sourceOf({
        clusterRoleBindings: [
          clusterRoleBinding('gone', 'no-such-role', [userSubject('alice')]),
          clusterRoleBinding('gone-too', 'also-missing', [userSubject('alice')]),
          clusterRoleBinding('gone-again', 'no-such-role', [userSubject('alice')]),
          clusterRoleBinding('not-alice', 'unrelated-missing', [userSubject('bob')]),
        ],
      });
      expect(authorize(missingOnly, request(alice, 'list', 'pods'))).to.deep.equal({
        allowed: false,
        reason: 'RBAC: [clusterrole.rbac.authorization.k8s.io "no-such-role" not found, clusterrole.rbac.authorization.k8s.io "also-missing" not found]',
      });
      const withValid = sourceOf({
        clusterRoles: [podReader],
        clusterRoleBindings: [clusterRoleBinding('gone', 'no-such-role', [userSubject('alice')]), clusterRoleBinding('alice-pods', 'pod-reader', [userSubject('alice')])],
      });
      expect(authorize(withValid, request(alice, 'list', 'pods')).reason).to.equal(
        'RBAC: allowed by ClusterRoleBinding "alice-pods" of ClusterRole "pod-reader" to User "alice"',
      );
    });

    it('a ClusterRoleBinding that references a Role grants nothing', () => {
      const binding: ClusterRoleBinding = { ...clusterRoleBinding('odd', 'pod-writer', [userSubject('alice')]), roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-writer' } };
      const source = sourceOf({ roles: [role('default', 'pod-writer', [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }])], clusterRoleBindings: [binding] });
      expect(authorize(source, request(alice, 'create', 'pods'))).to.deep.equal({ allowed: false, reason: 'RBAC: role.rbac.authorization.k8s.io "pod-writer" not found' });
    });
  });

  describe('rule matching', () => {
    const base = request(alice, 'get', 'pods', { name: 'web' });

    it('matches verbs and API groups exactly or by "*"', () => {
      expect(ruleAllows({ verbs: ['get'], apiGroups: [''], resources: ['pods'] }, base)).to.equal(true);
      expect(ruleAllows({ verbs: ['list'], apiGroups: [''], resources: ['pods'] }, base)).to.equal(false);
      expect(ruleAllows({ verbs: ['*'], apiGroups: [''], resources: ['pods'] }, { ...base, verb: 'deletecollection' })).to.equal(true);
      const deployments = request(alice, 'create', 'deployments', { apiGroup: 'apps' });
      expect(ruleAllows({ verbs: ['create'], apiGroups: [''], resources: ['deployments'] }, deployments)).to.equal(false);
      expect(ruleAllows({ verbs: ['create'], apiGroups: ['apps'], resources: ['deployments'] }, deployments)).to.equal(true);
      expect(ruleAllows({ verbs: ['create'], apiGroups: ['*'], resources: ['deployments'] }, deployments)).to.equal(true);
      expect(ruleAllows({ verbs: ['create'], apiGroups: ['apps'], resources: ['*'] }, deployments)).to.equal(true);
      // Absent lists match nothing.
      expect(ruleAllows({ apiGroups: ['*'], resources: ['*'] }, base)).to.equal(false);
      expect(ruleAllows({ verbs: ['*'], resources: ['*'] }, base)).to.equal(false);
      expect(ruleAllows({ verbs: ['*'], apiGroups: ['*'] }, base)).to.equal(false);
      // A non-resource rule never grants a resource request.
      expect(ruleAllows({ verbs: ['*'], nonResourceURLs: ['*'] }, base)).to.equal(false);
    });

    it('wildcards work through bindings too', () => {
      const source = sourceOf({
        clusterRoles: [clusterRole('apps-admin', [{ verbs: ['*'], apiGroups: ['apps'], resources: ['*'] }])],
        clusterRoleBindings: [clusterRoleBinding('alice-apps', 'apps-admin', [userSubject('alice')])],
      });
      expect(allowed(source, request(alice, 'delete', 'deployments', { apiGroup: 'apps', name: 'web' }))).to.equal(true);
      expect(allowed(source, request(alice, 'patch', 'statefulsets', { apiGroup: 'apps', subresource: 'scale', name: 'db' }))).to.equal(true);
      expect(allowed(source, request(alice, 'delete', 'jobs', { apiGroup: 'batch', name: 'j' }))).to.equal(false);
      expect(allowed(source, request(alice, 'get', 'pods', { name: 'p' }))).to.equal(false);
    });

    it('matches subresources as Kubernetes does', () => {
      const status = request(alice, 'update', 'pods', { subresource: 'status', name: 'web' });
      const grants = (resources: string[], attributes: RequestAttributes = status): boolean => ruleAllows({ verbs: ['update'], apiGroups: [''], resources }, attributes);
      expect(grants(['pods'])).to.equal(false);
      expect(grants(['pods/status'])).to.equal(true);
      expect(grants(['*/status'])).to.equal(true);
      expect(grants(['*'])).to.equal(true);
      expect(grants(['pods/scale'])).to.equal(false);
      expect(grants(['*/scale'])).to.equal(false);
      expect(grants(['nodes/status'])).to.equal(false);
      // "pods/*" is not a wildcard in Kubernetes (ResourceMatches knows only "*", exact and "*/sub").
      expect(grants(['pods/*'])).to.equal(false);
      // The resource itself is not granted by a subresource rule.
      const plain = request(alice, 'update', 'pods', { name: 'web' });
      expect(grants(['pods/status'], plain)).to.equal(false);
      expect(grants(['*/status'], plain)).to.equal(false);
      expect(grants(['pods'], plain)).to.equal(true);
      // "*/status" covers the status of any resource, in the rule's groups.
      expect(grants(['*/status'], request(alice, 'update', 'nodes', { subresource: 'status', namespace: '', name: 'n1' }))).to.equal(true);
    });

    it('a rule with resourceNames grants requests for those names only: not list, watch or create without a name', () => {
      const source = sourceOf({
        clusterRoles: [clusterRole('one-config', [{ verbs: ['get', 'list', 'watch', 'create', 'update'], apiGroups: [''], resources: ['configmaps'], resourceNames: ['app-config'] }])],
        clusterRoleBindings: [clusterRoleBinding('alice-config', 'one-config', [userSubject('alice')])],
      });
      expect(allowed(source, request(alice, 'get', 'configmaps', { name: 'app-config' }))).to.equal(true);
      expect(allowed(source, request(alice, 'update', 'configmaps', { name: 'app-config' }))).to.equal(true);
      expect(allowed(source, request(alice, 'get', 'configmaps', { name: 'other-config' }))).to.equal(false);
      expect(allowed(source, request(alice, 'list', 'configmaps'))).to.equal(false);
      expect(allowed(source, request(alice, 'watch', 'configmaps', { name: '' }))).to.equal(false);
      expect(allowed(source, request(alice, 'create', 'configmaps'))).to.equal(false);
      // An empty resourceNames list restricts nothing.
      expect(ruleAllows({ verbs: ['list'], apiGroups: [''], resources: ['configmaps'], resourceNames: [] }, request(alice, 'list', 'configmaps'))).to.equal(true);
    });
  });

  describe('forbiddenMessage', () => {
    it('words a namespaced denial as the API server does', () => {
      expect(forbiddenMessage(request(alice, 'list', 'pods'))).to.equal(
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"',
      );
      expect(forbiddenMessage(request(bob, 'get', 'deployments', { apiGroup: 'apps', namespace: 'prod', name: 'web' }))).to.equal(
        'deployments.apps "web" is forbidden: User "bob" cannot get resource "deployments" in API group "apps" in the namespace "prod"',
      );
    });

    it('words a cluster-scoped denial', () => {
      expect(forbiddenMessage(request(alice, 'list', 'nodes', { namespace: '' }))).to.equal(
        'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope',
      );
      expect(forbiddenMessage(request(alice, 'delete', 'clusterroles', { apiGroup: 'rbac.authorization.k8s.io', namespace: '', name: 'view' }))).to.equal(
        'clusterroles.rbac.authorization.k8s.io "view" is forbidden: User "alice" cannot delete resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope',
      );
    });

    it('words a subresource denial with resource/subresource', () => {
      expect(forbiddenMessage(request(alice, 'update', 'pods', { subresource: 'status' }))).to.equal(
        'pods is forbidden: User "alice" cannot update resource "pods/status" in API group "" in the namespace "default"',
      );
      expect(forbiddenMessage(request(alice, 'update', 'pods', { subresource: 'status', name: 'web' }))).to.equal(
        'pods "web" is forbidden: User "alice" cannot update resource "pods/status" in API group "" in the namespace "default"',
      );
    });

    it('appends a denial reason, as for a missing role', () => {
      const attributes = request(alice, 'list', 'pods');
      const decision = authorize(sourceOf({ clusterRoleBindings: [clusterRoleBinding('gone', 'no-such-role', [userSubject('alice')])] }), attributes);
      expect(forbiddenMessage(attributes, decision.reason)).to.equal(
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default": RBAC: clusterrole.rbac.authorization.k8s.io "no-such-role" not found',
      );
    });

    it('escapes characters that would read as HTML, and quotes like Go', () => {
      expect(forbiddenMessage(request({ name: '<b>"x"&', groups: [] }, 'get', 'pods', { namespace: '' }))).to.equal(
        'pods is forbidden: User "&lt;b&gt;\\"x\\"&amp;" cannot get resource "pods" in API group "" at the cluster scope',
      );
    });
  });

  describe('bootstrap policy', () => {
    const byName = (name: string): ClusterRole | undefined => BOOTSTRAP_CLUSTER_ROLES.find((r) => r.metadata.name === name);

    function bootstrapSource(roleBindings: readonly RoleBinding[] = []): RbacSource {
      return sourceOf({ clusterRoles: BOOTSTRAP_CLUSTER_ROLES, clusterRoleBindings: BOOTSTRAP_CLUSTER_ROLE_BINDINGS, roleBindings });
    }

    it('is well formed: versions, kinds, labels, and every binding names a bootstrap ClusterRole', () => {
      const names = BOOTSTRAP_CLUSTER_ROLES.map((r) => r.metadata.name);
      expect(names).to.include.members(['cluster-admin', 'admin', 'edit', 'view', 'system:node', 'system:kube-scheduler', 'system:kube-controller-manager']);
      expect(new Set(names).size).to.equal(names.length);
      for (const object of [...BOOTSTRAP_CLUSTER_ROLES, ...BOOTSTRAP_CLUSTER_ROLE_BINDINGS]) {
        expect(object.apiVersion).to.equal('rbac.authorization.k8s.io/v1');
        expect(object.metadata.labels).to.deep.equal({ 'kubernetes.io/bootstrapping': 'rbac-defaults' });
        expect(object.metadata.namespace).to.equal(undefined);
      }
      expect(BOOTSTRAP_CLUSTER_ROLES.every((r) => r.kind === 'ClusterRole')).to.equal(true);
      for (const binding of BOOTSTRAP_CLUSTER_ROLE_BINDINGS) {
        expect(binding.kind).to.equal('ClusterRoleBinding');
        expect(binding.roleRef).to.deep.equal({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: binding.metadata.name });
        expect(byName(binding.roleRef.name), binding.roleRef.name).to.not.equal(undefined);
      }
      const subjectsOf = (name: string): readonly Subject[] | undefined => BOOTSTRAP_CLUSTER_ROLE_BINDINGS.find((b) => b.metadata.name === name)?.subjects;
      expect(subjectsOf('cluster-admin')).to.deep.equal([{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:masters' }]);
      expect(subjectsOf('system:node')).to.deep.equal([{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:nodes' }]);
      expect(subjectsOf('system:kube-scheduler')).to.deep.equal([{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'system:kube-scheduler' }]);
      expect(subjectsOf('system:kube-controller-manager')).to.deep.equal([{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'system:kube-controller-manager' }]);
    });

    it('system:masters members can do anything, and cluster-admin alone grants everything', () => {
      const root: UserInfo = { name: 'admin-user', groups: ['system:masters'] };
      const source = bootstrapSource();
      expect(allowed(source, request(root, 'delete', 'clusterrolebindings', { apiGroup: 'rbac.authorization.k8s.io', namespace: '', name: 'cluster-admin' }))).to.equal(true);
      expect(allowed(source, request(root, 'get', 'secrets', { namespace: 'kube-system', name: 's' }))).to.equal(true);
      // The same power through the binding alone, for a user bound to cluster-admin.
      const bound = sourceOf({ clusterRoles: BOOTSTRAP_CLUSTER_ROLES, clusterRoleBindings: [clusterRoleBinding('ops', 'cluster-admin', [userSubject('ops')])] });
      const ops: UserInfo = { name: 'ops', groups: [] };
      expect(authorize(bound, request(ops, 'deletecollection', 'leases', { apiGroup: 'coordination.k8s.io', namespace: 'x' })).reason).to.equal(
        'RBAC: allowed by ClusterRoleBinding "ops" of ClusterRole "cluster-admin" to User "ops"',
      );
      expect(allowed(bound, request(ops, 'update', 'nodes', { subresource: 'status', namespace: '', name: 'n1' }))).to.equal(true);
    });

    it('view reads workloads but not secrets, and writes nothing', () => {
      const source = bootstrapSource([roleBinding('dev', 'alice-view', { kind: 'ClusterRole', name: 'view' }, [userSubject('alice')])]);
      const inDev = (verb: string, resource: string, fields: Partial<RequestAttributes> = {}): boolean => allowed(source, request(alice, verb, resource, { namespace: 'dev', ...fields }));
      expect(inDev('list', 'pods')).to.equal(true);
      expect(inDev('get', 'deployments', { apiGroup: 'apps', name: 'web' })).to.equal(true);
      expect(inDev('watch', 'jobs', { apiGroup: 'batch' })).to.equal(true);
      expect(inDev('get', 'secrets', { name: 's' })).to.equal(false);
      expect(inDev('list', 'secrets')).to.equal(false);
      expect(inDev('create', 'pods')).to.equal(false);
      expect(inDev('list', 'rolebindings', { apiGroup: 'rbac.authorization.k8s.io' })).to.equal(false);
      expect(allowed(source, request(alice, 'list', 'pods', { namespace: 'prod' }))).to.equal(false);
    });

    it('edit creates deployments and reads secrets, but cannot touch rolebindings', () => {
      const source = bootstrapSource([roleBinding('dev', 'bob-edit', { kind: 'ClusterRole', name: 'edit' }, [userSubject('bob')])]);
      const inDev = (verb: string, resource: string, fields: Partial<RequestAttributes> = {}): boolean => allowed(source, request(bob, verb, resource, { namespace: 'dev', ...fields }));
      expect(inDev('create', 'deployments', { apiGroup: 'apps' })).to.equal(true);
      expect(inDev('patch', 'deployments', { apiGroup: 'apps', subresource: 'scale', name: 'web' })).to.equal(true);
      expect(inDev('get', 'secrets', { name: 's' })).to.equal(true);
      expect(inDev('delete', 'configmaps', { name: 'c' })).to.equal(true);
      expect(inDev('create', 'rolebindings', { apiGroup: 'rbac.authorization.k8s.io' })).to.equal(false);
      expect(inDev('create', 'roles', { apiGroup: 'rbac.authorization.k8s.io' })).to.equal(false);
      expect(inDev('update', 'pods', { subresource: 'status', name: 'p' })).to.equal(false);
      expect(inDev('update', 'resourcequotas', { name: 'q' })).to.equal(false);
    });

    it('admin, bound by a RoleBinding, creates rolebindings in its namespace only', () => {
      const source = bootstrapSource([roleBinding('dev', 'carol-admin', { kind: 'ClusterRole', name: 'admin' }, [groupSubject('dev-leads')])]);
      const carol: UserInfo = { name: 'carol', groups: ['dev-leads'] };
      const createBinding = (namespace: string): RequestAttributes => request(carol, 'create', 'rolebindings', { apiGroup: 'rbac.authorization.k8s.io', namespace });
      expect(authorize(source, createBinding('dev')).reason).to.equal('RBAC: allowed by RoleBinding "carol-admin/dev" of ClusterRole "admin" to Group "dev-leads"');
      expect(allowed(source, request(carol, 'delete', 'roles', { apiGroup: 'rbac.authorization.k8s.io', namespace: 'dev', name: 'r' }))).to.equal(true);
      expect(allowed(source, request(carol, 'create', 'deployments', { apiGroup: 'apps', namespace: 'dev' }))).to.equal(true);
      expect(allowed(source, createBinding('prod'))).to.equal(false);
      expect(allowed(source, request(carol, 'create', 'clusterrolebindings', { apiGroup: 'rbac.authorization.k8s.io', namespace: '' }))).to.equal(false);
    });

    it('system:node (group system:nodes) updates pods/status and its node, but cannot delete deployments', () => {
      const source = bootstrapSource();
      const node: UserInfo = { name: 'system:node:n1', groups: ['system:nodes', 'system:authenticated'] };
      expect(authorize(source, request(node, 'update', 'pods', { subresource: 'status', namespace: 'default', name: 'web' })).reason).to.equal(
        'RBAC: allowed by ClusterRoleBinding "system:node" of ClusterRole "system:node" to Group "system:nodes"',
      );
      expect(allowed(source, request(node, 'patch', 'nodes', { subresource: 'status', namespace: '', name: 'n1' }))).to.equal(true);
      expect(allowed(source, request(node, 'create', 'nodes', { namespace: '' }))).to.equal(true);
      expect(allowed(source, request(node, 'watch', 'pods', { namespace: '' }))).to.equal(true);
      expect(allowed(source, request(node, 'get', 'secrets', { name: 's' }))).to.equal(true);
      expect(allowed(source, request(node, 'update', 'leases', { apiGroup: 'coordination.k8s.io', namespace: 'kube-node-lease', name: 'n1' }))).to.equal(true);
      expect(allowed(source, request(node, 'create', 'events'))).to.equal(true);
      expect(allowed(source, request(node, 'delete', 'deployments', { apiGroup: 'apps', name: 'web' }))).to.equal(false);
      expect(allowed(source, request(node, 'update', 'pods', { name: 'web' }))).to.equal(false);
      expect(allowed(source, request(node, 'delete', 'nodes', { namespace: '', name: 'n2' }))).to.equal(false);
      expect(allowed(source, request(node, 'create', 'secrets'))).to.equal(false);
      // Without the group, the node identity has no rights.
      expect(allowed(source, request({ name: 'system:node:n1', groups: [] }, 'update', 'pods', { subresource: 'status', name: 'web' }))).to.equal(false);
    });

    it('system:kube-scheduler binds pods and reads what placement needs, but deletes nothing', () => {
      const source = bootstrapSource();
      const scheduler: UserInfo = { name: 'system:kube-scheduler', groups: [] };
      expect(allowed(source, request(scheduler, 'list', 'nodes', { namespace: '' }))).to.equal(true);
      expect(allowed(source, request(scheduler, 'watch', 'replicasets', { apiGroup: 'apps', namespace: '' }))).to.equal(true);
      expect(allowed(source, request(scheduler, 'create', 'pods', { subresource: 'binding', name: 'web' }))).to.equal(true);
      // It binds through pods/binding; a pod's spec is not its to rewrite.
      expect(allowed(source, request(scheduler, 'update', 'pods', { name: 'web' }))).to.equal(false);
      expect(allowed(source, request(scheduler, 'patch', 'pods', { subresource: 'status', name: 'web' }))).to.equal(true);
      expect(allowed(source, request(scheduler, 'create', 'leases', { apiGroup: 'coordination.k8s.io', namespace: 'kube-system' }))).to.equal(true);
      expect(allowed(source, request(scheduler, 'delete', 'pods', { name: 'web' }))).to.equal(false);
      expect(allowed(source, request(scheduler, 'get', 'secrets', { name: 's' }))).to.equal(false);
      expect(allowed(source, request(scheduler, 'update', 'nodes', { namespace: '', name: 'n1' }))).to.equal(false);
    });

    it('system:kube-controller-manager writes workloads anywhere but only reads RBAC objects', () => {
      const source = bootstrapSource();
      const manager: UserInfo = { name: 'system:kube-controller-manager', groups: [] };
      expect(allowed(source, request(manager, 'create', 'pods', { namespace: 'prod' }))).to.equal(true);
      expect(allowed(source, request(manager, 'update', 'deployments', { apiGroup: 'apps', subresource: 'status', name: 'web' }))).to.equal(true);
      expect(allowed(source, request(manager, 'delete', 'jobs', { apiGroup: 'batch', name: 'j' }))).to.equal(true);
      expect(allowed(source, request(manager, 'list', 'roles', { apiGroup: 'rbac.authorization.k8s.io', namespace: '' }))).to.equal(true);
      expect(allowed(source, request(manager, 'create', 'clusterrolebindings', { apiGroup: 'rbac.authorization.k8s.io', namespace: '' }))).to.equal(false);
      expect(allowed(source, request(manager, 'update', 'roles', { apiGroup: 'rbac.authorization.k8s.io', name: 'r' }))).to.equal(false);
    });
  });
});
