// What each kind adds to the generic registry, as Kubernetes' strategies do:
// defaults filled in on create (restartPolicy, protocol TCP,
// imagePullPolicy, replicas, rolling-update parameters...), the kind's own
// validation (required fields, ranges, references, selectors that must
// select the template), and the fields an update may not change. Pure:
// objects in, objects and field errors out. Cluster IPs and node ports are
// allocated by the registry (allocator.ts), not here.

import { quantityValue } from '../client/quantity.js';
import { isJsonObject, type FieldError, type Json } from './schema.js';
import { dns1123Label, qualifiedName } from './validation.js';
import { labelSelectorRequirements, matchesLabels, SelectorError } from './selectors.js';

type Obj = Record<string, Json>;

const objAt = (parent: Obj, key: string): Obj => {
  const value = parent[key];
  if (isJsonObject(value)) return value;
  const created: Obj = {};
  parent[key] = created;
  return created;
};
const listAt = (parent: Obj | undefined, key: string): Obj[] => (parent !== undefined && Array.isArray(parent[key]) ? (parent[key] as Json[]).filter(isJsonObject) : []);
const setDefault = (target: Obj, key: string, value: Json): void => {
  if (target[key] === undefined) target[key] = value;
};

export interface Strategy {
  /** Fill in defaults (mutates). */
  readonly defaults?: (object: Obj) => void;
  readonly validate?: (object: Obj) => FieldError[];
  /** Checks of an update against the stored object (immutable fields). */
  readonly validateUpdate?: (next: Obj, current: Obj) => FieldError[];
}

// ------------------------------------------------------------------ pods

function defaultContainer(container: Obj): void {
  const image = typeof container.image === 'string' ? container.image : '';
  const tag = /:([^/:@]+)$/.exec(image)?.[1];
  setDefault(container, 'imagePullPolicy', image.includes('@') || (tag !== undefined && tag !== 'latest') ? 'IfNotPresent' : 'Always');
  setDefault(container, 'terminationMessagePath', '/dev/termination-log');
  setDefault(container, 'terminationMessagePolicy', 'File');
  for (const port of listAt(container, 'ports')) setDefault(port, 'protocol', 'TCP');
  for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
    const value = container[probe];
    if (!isJsonObject(value)) continue;
    setDefault(value, 'timeoutSeconds', 1);
    setDefault(value, 'periodSeconds', 10);
    setDefault(value, 'successThreshold', 1);
    setDefault(value, 'failureThreshold', 3);
  }
}

export function defaultPodSpec(spec: Obj): void {
  setDefault(spec, 'restartPolicy', 'Always');
  setDefault(spec, 'terminationGracePeriodSeconds', 30);
  setDefault(spec, 'dnsPolicy', 'ClusterFirst');
  setDefault(spec, 'schedulerName', 'default-scheduler');
  for (const container of [...listAt(spec, 'initContainers'), ...listAt(spec, 'containers')]) defaultContainer(container);
}

/** Kubernetes' DefaultTolerationSeconds admission: how long a pod stays on a node that is not ready or unreachable, unless it says otherwise. */
export const DEFAULT_TOLERATION_SECONDS = 300;
export const DEFAULT_TOLERATION_TAINTS = ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable'] as const;

/**
 * A pod that does not tolerate the node lifecycle controller's NoExecute
 * taints (a toleration with that key or none, and effect NoExecute or none)
 * is given one for DEFAULT_TOLERATION_SECONDS, as Kubernetes' admission
 * does on create and update; pod templates are left alone.
 */
export function defaultTolerationSeconds(spec: Obj): void {
  const tolerations = Array.isArray(spec.tolerations) ? spec.tolerations : [];
  const tolerates = (key: string): boolean =>
    tolerations.some((toleration) => isJsonObject(toleration) && (toleration.key === undefined || toleration.key === '' || toleration.key === key) && (toleration.effect === undefined || toleration.effect === '' || toleration.effect === 'NoExecute'));
  const added = DEFAULT_TOLERATION_TAINTS.filter((key) => !tolerates(key)).map((key): Obj => ({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: DEFAULT_TOLERATION_SECONDS }));
  if (added.length > 0) spec.tolerations = [...tolerations, ...added];
}

const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];

function oneOf(value: Json | undefined, allowed: readonly string[], path: string): FieldError[] {
  if (value === undefined || (typeof value === 'string' && allowed.includes(value))) return [];
  return [{ path, message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${allowed.map((item) => `"${item}"`).join(', ')}` }];
}

function portNumber(value: Json | undefined, path: string, required: boolean): FieldError[] {
  if (value === undefined) return required ? [{ path, message: 'Required value' }] : [];
  if (typeof value !== 'number' || value < 1 || value > 65535) return [{ path, message: `Invalid value: ${JSON.stringify(value)}: must be between 1 and 65535, inclusive` }];
  return [];
}

/** `claimVolumes`: names a container may mount besides spec.volumes (a StatefulSet's volumeClaimTemplates). */
function validateContainers(spec: Obj, path: string, claimVolumes: readonly Json[] = []): FieldError[] {
  const errors: FieldError[] = [];
  const containers = listAt(spec, 'containers');
  if (containers.length === 0) errors.push({ path: `${path}.containers`, message: 'Required value: at least one container' });
  const names = new Set<string>();
  const volumes = new Set([...listAt(spec, 'volumes').map((volume) => volume.name), ...claimVolumes]);
  for (const [group, list] of [['initContainers', listAt(spec, 'initContainers')], ['containers', containers]] as const) {
    list.forEach((container, index) => {
      const at = `${path}.${group}[${index}]`;
      if (typeof container.name !== 'string' || container.name === '') errors.push({ path: `${at}.name`, message: 'Required value' });
      else {
        errors.push(...dns1123Label(container.name, `${at}.name`));
        if (names.has(container.name)) errors.push({ path: `${at}.name`, message: `Duplicate value: "${container.name}"` });
        names.add(container.name);
      }
      if (typeof container.image !== 'string' || container.image.trim() === '') errors.push({ path: `${at}.image`, message: 'Required value' });
      errors.push(...oneOf(container.imagePullPolicy, ['Always', 'IfNotPresent', 'Never'], `${at}.imagePullPolicy`));
      listAt(container, 'ports').forEach((port, portIndex) => {
        errors.push(...portNumber(port.containerPort, `${at}.ports[${portIndex}].containerPort`, true));
        errors.push(...portNumber(port.hostPort, `${at}.ports[${portIndex}].hostPort`, false));
        errors.push(...oneOf(port.protocol, PROTOCOLS, `${at}.ports[${portIndex}].protocol`));
      });
      listAt(container, 'env').forEach((variable, envIndex) => {
        if (typeof variable.name !== 'string' || variable.name === '') errors.push({ path: `${at}.env[${envIndex}].name`, message: 'Required value' });
      });
      listAt(container, 'volumeMounts').forEach((mount, mountIndex) => {
        if (!volumes.has(mount.name as Json)) errors.push({ path: `${at}.volumeMounts[${mountIndex}].name`, message: `Not found: ${JSON.stringify(mount.name ?? null)}: no volume of that name` });
        if (typeof mount.mountPath !== 'string' || mount.mountPath === '') errors.push({ path: `${at}.volumeMounts[${mountIndex}].mountPath`, message: 'Required value' });
      });
      const resources = isJsonObject(container.resources) ? container.resources : {};
      const requests = isJsonObject(resources.requests) ? resources.requests : {};
      const limits = isJsonObject(resources.limits) ? resources.limits : {};
      for (const [resource, request] of Object.entries(requests)) {
        const limit = quantityValue(limits[resource]);
        const requested = quantityValue(request);
        if (limit !== undefined && requested !== undefined && requested > limit) {
          errors.push({ path: `${at}.resources.requests[${JSON.stringify(resource)}]`, message: `Invalid value: "${String(request)}": must be less than or equal to ${resource} limit of ${String(limits[resource])}` });
        }
      }
    });
  }
  const volumeNames = new Set<string>();
  listAt(spec, 'volumes').forEach((volume, index) => {
    const at = `${path}.volumes[${index}]`;
    if (typeof volume.name !== 'string' || volume.name === '') errors.push({ path: `${at}.name`, message: 'Required value' });
    else if (volumeNames.has(volume.name)) errors.push({ path: `${at}.name`, message: `Duplicate value: "${volume.name}"` });
    else volumeNames.add(volume.name);
    const sources = ['emptyDir', 'hostPath', 'configMap', 'secret', 'persistentVolumeClaim'].filter((source) => volume[source] !== undefined);
    if (sources.length !== 1) errors.push({ path: at, message: sources.length === 0 ? 'must specify a volume type (emptyDir, hostPath, configMap, secret or persistentVolumeClaim)' : `may not specify more than 1 volume type (${sources.join(', ')})` });
  });
  errors.push(...oneOf(spec.restartPolicy, ['Always', 'OnFailure', 'Never'], `${path}.restartPolicy`));
  errors.push(...oneOf(spec.dnsPolicy, ['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'], `${path}.dnsPolicy`));
  listAt(spec, 'tolerations').forEach((toleration, index) => {
    errors.push(...oneOf(toleration.operator, ['Exists', 'Equal'], `${path}.tolerations[${index}].operator`));
    errors.push(...oneOf(toleration.effect, ['NoSchedule', 'PreferNoSchedule', 'NoExecute'], `${path}.tolerations[${index}].effect`));
  });
  for (const [key] of Object.entries(isJsonObject(spec.nodeSelector) ? spec.nodeSelector : {})) errors.push(...qualifiedName(key, `${path}.nodeSelector[${JSON.stringify(key)}]`));
  return errors;
}

/** Fields of a pod spec an update may change: images, activeDeadlineSeconds, tolerations (added), and nodeName once (binding). */
function podSpecChanges(next: Obj, current: Obj): FieldError[] {
  const strip = (spec: Obj): Json => {
    const copy = JSON.parse(JSON.stringify(spec)) as Obj;
    for (const group of ['containers', 'initContainers']) for (const container of listAt(copy, group)) delete container.image;
    delete copy.activeDeadlineSeconds;
    delete copy.tolerations;
    if (current.nodeName === undefined || current.nodeName === '') delete copy.nodeName;
    return copy;
  };
  if (JSON.stringify(strip(next)) !== JSON.stringify(strip(current))) {
    return [{ path: 'spec', message: 'Forbidden: pod updates may not change fields other than spec.containers[*].image, spec.initContainers[*].image, spec.activeDeadlineSeconds, spec.tolerations (only additions) and an unset spec.nodeName' }];
  }
  return [];
}

// ------------------------------------------------------------------ workloads

function validateSelectorMatchesTemplate(spec: Obj, path: string, required: boolean): FieldError[] {
  const selector = spec.selector;
  const template = isJsonObject(spec.template) ? spec.template : undefined;
  const templateLabels = isJsonObject(template?.metadata) && isJsonObject(template.metadata.labels) ? (template.metadata.labels as Record<string, string>) : {};
  if (!isJsonObject(selector)) return required ? [{ path: `${path}.selector`, message: 'Required value' }] : [];
  let requirements;
  try {
    requirements = labelSelectorRequirements(selector as never, `${path}.selector`);
  } catch (error) {
    return [{ path: `${path}.selector`, message: error instanceof SelectorError ? error.message : String(error) }];
  }
  if (requirements.length === 0) return [{ path: `${path}.selector`, message: 'Invalid value: empty selector is invalid for this workload' }];
  if (template !== undefined && !matchesLabels(requirements, templateLabels)) {
    return [{ path: `${path}.template.metadata.labels`, message: '`selector` does not match template `labels`' }];
  }
  return [];
}

function templateSpec(spec: Obj): Obj | undefined {
  const template = spec.template;
  return isJsonObject(template) && isJsonObject(template.spec) ? template.spec : undefined;
}

interface WorkloadOptions {
  readonly replicas: boolean;
  /** Defaults of the kind's own spec fields; `object` for those that depend on its metadata. */
  readonly extraDefaults?: (spec: Obj, object: Obj) => void;
  readonly restartPolicies?: readonly string[];
  /** Pods may mount the spec's volumeClaimTemplates by name (StatefulSet). */
  readonly claimTemplates?: boolean;
}

function workload(options: WorkloadOptions): Strategy {
  return {
    defaults: (object) => {
      const spec = objAt(object, 'spec');
      if (options.replicas) setDefault(spec, 'replicas', 1);
      options.extraDefaults?.(spec, object);
      const podSpec = templateSpec(spec);
      if (podSpec !== undefined) {
        if (options.restartPolicies !== undefined) setDefault(podSpec, 'restartPolicy', options.restartPolicies[0]!);
        defaultPodSpec(podSpec);
      }
    },
    validate: (object) => {
      const spec = isJsonObject(object.spec) ? object.spec : {};
      const errors = validateSelectorMatchesTemplate(spec, 'spec', true);
      const podSpec = templateSpec(spec);
      if (podSpec === undefined) errors.push({ path: 'spec.template', message: 'Required value' });
      else {
        const claims = options.claimTemplates === true ? listAt(spec, 'volumeClaimTemplates').map((claim) => (isJsonObject(claim.metadata) ? (claim.metadata.name ?? null) : null)) : [];
        errors.push(...validateContainers(podSpec, 'spec.template.spec', claims));
        if (options.restartPolicies !== undefined) errors.push(...oneOf(podSpec.restartPolicy, options.restartPolicies, 'spec.template.spec.restartPolicy'));
      }
      if (options.replicas && typeof spec.replicas === 'number' && spec.replicas < 0) errors.push({ path: 'spec.replicas', message: `Invalid value: ${spec.replicas}: must be greater than or equal to 0` });
      return errors;
    },
    validateUpdate: (next, current) => {
      const selector = (object: Obj): string => JSON.stringify(isJsonObject(object.spec) ? (object.spec.selector ?? null) : null);
      return selector(next) === selector(current) ? [] : [{ path: 'spec.selector', message: 'Invalid value: field is immutable' }];
    },
  };
}

// ------------------------------------------------------------------ services

export const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];

const serviceStrategy: Strategy = {
  defaults: (object) => {
    const spec = objAt(object, 'spec');
    setDefault(spec, 'type', 'ClusterIP');
    setDefault(spec, 'sessionAffinity', 'None');
    for (const port of listAt(spec, 'ports')) {
      setDefault(port, 'protocol', 'TCP');
      if (port.port !== undefined) setDefault(port, 'targetPort', port.port);
    }
    if (spec.type === 'NodePort' || spec.type === 'LoadBalancer') setDefault(spec, 'externalTrafficPolicy', 'Cluster');
  },
  validate: (object) => {
    const spec = isJsonObject(object.spec) ? object.spec : {};
    const errors: FieldError[] = [...oneOf(spec.type, SERVICE_TYPES, 'spec.type'), ...oneOf(spec.sessionAffinity, ['None', 'ClientIP'], 'spec.sessionAffinity')];
    const ports = listAt(spec, 'ports');
    const headless = spec.clusterIP === 'None';
    if (ports.length === 0 && !headless && spec.type !== 'ExternalName') errors.push({ path: 'spec.ports', message: 'Required value' });
    if (spec.type === 'ExternalName' && (typeof spec.externalName !== 'string' || spec.externalName === '')) errors.push({ path: 'spec.externalName', message: 'Required value' });
    if (headless && (spec.type === 'NodePort' || spec.type === 'LoadBalancer')) errors.push({ path: 'spec.clusterIP', message: `Invalid value: "None": may not be set to 'None' for ${String(spec.type)} services` });
    const names = new Set<string>();
    ports.forEach((port, index) => {
      const at = `spec.ports[${index}]`;
      errors.push(...portNumber(port.port, `${at}.port`, true), ...oneOf(port.protocol, PROTOCOLS, `${at}.protocol`));
      if (ports.length > 1 && (typeof port.name !== 'string' || port.name === '')) errors.push({ path: `${at}.name`, message: 'Required value: names are required when a service has more than one port' });
      if (typeof port.name === 'string' && port.name !== '') {
        if (names.has(port.name)) errors.push({ path: `${at}.name`, message: `Duplicate value: "${port.name}"` });
        names.add(port.name);
      }
      if (typeof port.targetPort === 'number') errors.push(...portNumber(port.targetPort, `${at}.targetPort`, false));
      if (port.nodePort !== undefined && spec.type !== 'NodePort' && spec.type !== 'LoadBalancer') errors.push({ path: `${at}.nodePort`, message: `Forbidden: may not be used when \`type\` is '${String(spec.type)}'` });
    });
    return errors;
  },
  validateUpdate: (next, current) => {
    const ip = (object: Obj): Json | undefined => (isJsonObject(object.spec) ? object.spec.clusterIP : undefined);
    // An update that omits the clusterIP keeps it (the registry carries it over); changing it is refused.
    const given = ip(next);
    return given !== undefined && given !== '' && given !== ip(current) ? [{ path: 'spec.clusterIP', message: 'Invalid value: field is immutable' }] : [];
  },
};

// ------------------------------------------------------------------ namespaces

/** The finalizer through which the namespace controller empties a namespace before it goes (Kubernetes' FinalizerKubernetes). */
export const NAMESPACE_FINALIZER = 'kubernetes';

/** A namespace's spec.finalizers; absent means the default (namespaces stored before it existed). */
export function namespaceFinalizers(namespace: Obj): string[] {
  const spec = namespace.spec;
  if (!isJsonObject(spec) || !Array.isArray(spec.finalizers)) return [NAMESPACE_FINALIZER];
  return spec.finalizers.filter((finalizer): finalizer is string => typeof finalizer === 'string');
}

/** Namespaces every cluster keeps (Kubernetes' immortal namespaces, and the node lease one). */
export const IMMORTAL_NAMESPACES: ReadonlySet<string> = new Set(['default', 'kube-system', 'kube-public', 'kube-node-lease']);

// ------------------------------------------------------------------ the table

const podStrategy: Strategy = {
  defaults: (object) => {
    const spec = objAt(object, 'spec');
    defaultPodSpec(spec);
    defaultTolerationSeconds(spec);
  },
  validate: (object) => (isJsonObject(object.spec) ? validateContainers(object.spec, 'spec') : [{ path: 'spec', message: 'Required value' }]),
  validateUpdate: (next, current) => podSpecChanges(isJsonObject(next.spec) ? next.spec : {}, isJsonObject(current.spec) ? current.spec : {}),
};

/** The labels by which a Job's generated selector picks its pods (Kubernetes' names, and the legacy ones). */
export const JOB_UID_LABEL = 'batch.kubernetes.io/controller-uid';
export const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';

/**
 * Kubernetes' Job defaulting: unless spec.manualSelector, the selector is
 * generated from the Job's uid and its labels are added to the template,
 * so a Job's pods are its own whatever labels the user gave.
 */
function generateJobSelector(spec: Obj, object: Obj): void {
  if (spec.manualSelector === true || spec.selector !== undefined) return;
  const metadata = isJsonObject(object.metadata) ? object.metadata : {};
  if (typeof metadata.uid !== 'string' || metadata.uid === '') return;
  const name = typeof metadata.name === 'string' ? metadata.name : '';
  spec.selector = { matchLabels: { [JOB_UID_LABEL]: metadata.uid } };
  const template = objAt(spec, 'template');
  const templateMetadata = objAt(template, 'metadata');
  templateMetadata.labels = { ...(isJsonObject(templateMetadata.labels) ? templateMetadata.labels : {}), [JOB_UID_LABEL]: metadata.uid, [JOB_NAME_LABEL]: name, 'controller-uid': metadata.uid, 'job-name': name };
}

export const STRATEGIES: Readonly<Record<string, Strategy>> = {
  Pod: podStrategy,
  Service: serviceStrategy,
  Deployment: workload({
    replicas: true,
    extraDefaults: (spec) => {
      const strategy = objAt(spec, 'strategy');
      setDefault(strategy, 'type', 'RollingUpdate');
      if (strategy.type === 'RollingUpdate') {
        const rolling = objAt(strategy, 'rollingUpdate');
        setDefault(rolling, 'maxUnavailable', '25%');
        setDefault(rolling, 'maxSurge', '25%');
      }
      setDefault(spec, 'revisionHistoryLimit', 10);
      setDefault(spec, 'progressDeadlineSeconds', 600);
    },
  }),
  ReplicaSet: workload({ replicas: true }),
  StatefulSet: workload({
    replicas: true,
    claimTemplates: true,
    extraDefaults: (spec) => {
      setDefault(spec, 'podManagementPolicy', 'OrderedReady');
      setDefault(objAt(spec, 'updateStrategy'), 'type', 'RollingUpdate');
      setDefault(spec, 'revisionHistoryLimit', 10);
    },
  }),
  DaemonSet: workload({
    replicas: false,
    extraDefaults: (spec) => {
      const strategy = objAt(spec, 'updateStrategy');
      setDefault(strategy, 'type', 'RollingUpdate');
      setDefault(spec, 'revisionHistoryLimit', 10);
    },
  }),
  Job: workload({
    replicas: false,
    restartPolicies: ['Never', 'OnFailure'],
    extraDefaults: (spec, object) => {
      // Kubernetes: both unset is one pod run once; parallelism alone leaves completions unset (a work queue).
      if (spec.completions === undefined && spec.parallelism === undefined) spec.completions = 1;
      setDefault(spec, 'parallelism', 1);
      setDefault(spec, 'backoffLimit', 6);
      generateJobSelector(spec, object);
    },
  }),
  Namespace: {
    defaults: (object) => {
      setDefault(objAt(object, 'status'), 'phase', 'Active');
      setDefault(objAt(object, 'spec'), 'finalizers', [NAMESPACE_FINALIZER]);
    },
    validateUpdate: (next, current) => {
      // mast has no /finalize subresource: spec.finalizers change through update; while terminating, only removals.
      if (!isJsonObject(current.metadata) || current.metadata.deletionTimestamp === undefined) return [];
      const before = new Set(namespaceFinalizers(current));
      const added = namespaceFinalizers(next).filter((finalizer) => !before.has(finalizer));
      return added.length === 0 ? [] : [{ path: 'spec.finalizers', message: `Forbidden: no new finalizers can be added if the namespace is being terminated, found new finalizers ${JSON.stringify(added)}` }];
    },
  },
  Secret: {
    defaults: (object) => setDefault(object, 'type', 'Opaque'),
    validate: (object) =>
      Object.entries(isJsonObject(object.data) ? object.data : {})
        .filter(([, value]) => typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0)
        .map(([key]) => ({ path: `data[${JSON.stringify(key)}]`, message: 'Invalid value: must be base64-encoded' })),
  },
};
