// A container's environment, built the way the kubelet builds it
// (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables, envvars.FromServices,
// the forked expansion package): Service link variables, then envFrom, then
// env with $(VAR) expansion and valueFrom. Pure: the agent fetches the
// ConfigMaps, Secrets and Services first (envReferences names them) and
// passes them in; no clocks, no I/O (inside the lint's determinism boundary).

import type { ConfigMap, Container, Pod, Secret, Service, VolumeMount } from '../../proto/gen/resources/v1/core.js';
import { parseQuantity } from '../client/quantity.js';
import { PodConfigError } from './pod-environment-types.js';

export interface EnvVariable {
  readonly name: string;
  readonly value: string;
}

/** What a container's environment reads, fetched beforehand (objects absent from a map do not exist). */
export interface EnvSources {
  /** ConfigMaps of the pod's namespace, by name. */
  readonly configMaps: ReadonlyMap<string, ConfigMap>;
  /** Secrets of the pod's namespace, by name. */
  readonly secrets: ReadonlyMap<string, Secret>;
  /** Services that exist now (any namespace: the Kubernetes rule below picks). */
  readonly services: readonly Service[];
  readonly podIP: string;
  /** The node's address (status.hostIP). */
  readonly hostIP: string;
  /** What resourceFieldRef limits read when the container sets none (the kubelet: node allocatable). */
  readonly nodeAllocatable?: Readonly<Record<string, string>>;
}

export interface ContainerEnvironment {
  readonly env: EnvVariable[];
  /** Things the kubelet reports as Warning events but does not fail on (envFrom keys that are no variable names). */
  readonly warnings: string[];
}

const CONFIG_ERROR = 'CreateContainerConfigError';
/** Kubernetes' "master services": their variables reach every pod, links enabled or not. */
const MASTER_SERVICE_NAMESPACE = 'default';
const MASTER_SERVICES: ReadonlySet<string> = new Set(['kubernetes']);
/** validation.IsEnvVarName. */
const ENV_VAR_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** The ConfigMaps and Secrets a container's env and envFrom name (to fetch before containerEnvironment). */
export function envReferences(container: Container): { configMaps: string[]; secrets: string[] } {
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef?.name !== undefined) configMaps.add(source.configMapRef.name);
    if (source.secretRef?.name !== undefined) secrets.add(source.secretRef.name);
  }
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined && variable.value !== '') continue;
    const from = variable.valueFrom;
    if (from?.configMapKeyRef?.name !== undefined) configMaps.add(from.configMapKeyRef.name);
    if (from?.secretKeyRef?.name !== undefined) secrets.add(from.secretKeyRef.name);
  }
  return { configMaps: [...configMaps], secrets: [...secrets] };
}

// ------------------------------------------------------------ service links

function envName(name: string): string {
  return name.replace(/-/g, '_').toUpperCase();
}

function hasClusterIP(service: Service): boolean {
  const ip = service.spec?.clusterIP ?? '';
  return ip !== '' && ip !== 'None';
}

/** net.JoinHostPort: IPv6 addresses in brackets. */
function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** envvars.FromServices for one Service: the *_SERVICE_* variables and Docker's link variables. */
function serviceVariables(service: Service, into: Map<string, string>): void {
  const ports = service.spec?.ports ?? [];
  const first = ports[0];
  if (first === undefined) return;
  const ip = service.spec?.clusterIP ?? '';
  const prefix = envName(service.metadata?.name ?? '');
  into.set(`${prefix}_SERVICE_HOST`, ip);
  into.set(`${prefix}_SERVICE_PORT`, String(first.port ?? 0));
  for (const port of ports) {
    if (port.name !== undefined && port.name !== '') into.set(`${prefix}_SERVICE_PORT_${envName(port.name)}`, String(port.port ?? 0));
  }
  ports.forEach((port, index) => {
    const protocol = port.protocol === undefined || port.protocol === '' ? 'TCP' : port.protocol;
    const number = port.port ?? 0;
    const url = `${protocol.toLowerCase()}://${joinHostPort(ip, number)}`;
    // Docker special-cases the first port.
    if (index === 0) into.set(`${prefix}_PORT`, url);
    const portPrefix = `${prefix}_PORT_${number}_${protocol.toUpperCase()}`;
    into.set(portPrefix, url);
    into.set(`${portPrefix}_PROTO`, protocol.toLowerCase());
    into.set(`${portPrefix}_PORT`, String(number));
    into.set(`${portPrefix}_ADDR`, ip);
  });
}

/**
 * The Service variables a pod in `namespace` gets (kubelet getServiceEnvVarMap):
 * every Service with a cluster IP in its namespace when links are enabled,
 * and the master service (default/kubernetes) always — a Service of the
 * same name in the pod's own namespace wins over it. Headless and
 * ExternalName Services (no cluster IP) give none. In name order.
 */
export function serviceEnvironment(services: readonly Service[], namespace: string, enableServiceLinks: boolean): Map<string, string> {
  const chosen = new Map<string, Service>();
  for (const service of services) {
    if (!hasClusterIP(service)) continue;
    const name = service.metadata?.name ?? '';
    const serviceNamespace = service.metadata?.namespace ?? '';
    if (serviceNamespace === MASTER_SERVICE_NAMESPACE && MASTER_SERVICES.has(name)) {
      if (!chosen.has(name)) chosen.set(name, service);
    } else if (serviceNamespace === namespace && enableServiceLinks) {
      chosen.set(name, service);
    }
  }
  const variables = new Map<string, string>();
  for (const name of [...chosen.keys()].sort()) serviceVariables(chosen.get(name)!, variables);
  return variables;
}

// ------------------------------------------------------------ $(VAR) expansion

/**
 * Kubernetes' expansion.Expand: `$(NAME)` is replaced by mapping(NAME),
 * `$$` is a literal `$`, and anything else (an unclosed `$(`, a `$` before
 * another character) stays as written.
 */
export function expand(input: string, mapping: (name: string) => string): string {
  let output = '';
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== '$' || cursor + 1 >= input.length) continue;
    output += input.slice(checkpoint, cursor);
    const next = input[cursor + 1];
    let advance = 1;
    if (next === '$') {
      output += '$';
    } else if (next === '(') {
      const closer = input.indexOf(')', cursor + 2);
      if (closer < 0) output += '$(';
      else {
        output += mapping(input.slice(cursor + 2, closer));
        advance = closer - cursor;
      }
    } else {
      output += `$${next ?? ''}`;
    }
    cursor += advance;
    checkpoint = cursor + 1;
  }
  return output + input.slice(checkpoint);
}

/** expansion.MappingFuncFor: the first context that has the name; an unknown reference stays `$(NAME)`. */
export function mappingFor(...contexts: ReadonlyArray<ReadonlyMap<string, string>>): (name: string) => string {
  return (name) => {
    for (const context of contexts) {
      const value = context.get(name);
      if (value !== undefined) return value;
    }
    return `$(${name})`;
  };
}

function envMap(env: readonly EnvVariable[]): Map<string, string> {
  return new Map(env.map((variable) => [variable.name, variable.value]));
}

/** kubecontainer.ExpandContainerCommandAndArgs: $(VAR) in command and args from the final environment. */
export function expandCommandAndArgs(container: Container, env: readonly EnvVariable[]): { command: string[]; args: string[] } {
  const mapping = mappingFor(envMap(env));
  return { command: (container.command ?? []).map((part) => expand(part, mapping)), args: (container.args ?? []).map((part) => expand(part, mapping)) };
}

/** kubecontainer.ExpandContainerVolumeMounts: a mount's subPathExpr; every variable it names must be set and non-empty. */
export function expandSubPathExpr(mount: VolumeMount, env: readonly EnvVariable[]): string {
  const values = envMap(env);
  const missing = new Set<string>();
  const expanded = expand(mount.subPathExpr ?? '', (name) => {
    const value = values.get(name);
    if (value === undefined || value === '') missing.add(name);
    return value ?? '';
  });
  if (missing.size > 0) throw new PodConfigError(CONFIG_ERROR, `missing value for ${[...missing].sort().join(', ')}`);
  return expanded;
}

// ------------------------------------------------------------ secrets

/** Base64 text as bytes (Secret data, ConfigMap binaryData). */
export function decodeBase64(text: string): Uint8Array {
  let binary: string;
  try {
    binary = atob(text.replace(/\s+/g, ''));
  } catch {
    throw new PodConfigError(CONFIG_ERROR, 'data is not valid base64');
  }
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index++) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

/** A Secret's values as bytes: data (base64) decoded, stringData merged over it as the API server does on write. */
export function secretBytes(secret: Secret): Map<string, Uint8Array> {
  const values = new Map<string, Uint8Array>();
  for (const [key, value] of Object.entries(secret.data ?? {})) values.set(key, decodeBase64(value));
  for (const [key, value] of Object.entries(secret.stringData ?? {})) values.set(key, new TextEncoder().encode(value));
  return values;
}

function secretStrings(secret: Secret): Map<string, string> {
  const decoder = new TextDecoder();
  return new Map([...secretBytes(secret)].map(([key, value]) => [key, decoder.decode(value)]));
}

// ------------------------------------------------------------ downward API

/** fieldpath.FormatMap: sorted key="value" lines. */
function formatMap(map: Readonly<Record<string, string>> | undefined): string {
  return Object.keys(map ?? {})
    .sort()
    .map((key) => `${key}=${JSON.stringify(map?.[key] ?? '')}`)
    .join('\n');
}

/** The value of a fieldRef (kubelet podFieldSelectorRuntimeValue and fieldpath.ExtractFieldPathAsString). */
export function fieldPathValue(pod: Pod, fieldPath: string, podIP: string, hostIP: string): string {
  const subscripted = /^(metadata\.(?:labels|annotations))\['(.*)'\]$/.exec(fieldPath);
  if (subscripted !== null) {
    const map = subscripted[1] === 'metadata.labels' ? pod.metadata?.labels : pod.metadata?.annotations;
    return map?.[subscripted[2] ?? ''] ?? '';
  }
  switch (fieldPath) {
    case 'metadata.name':
      return pod.metadata?.name ?? '';
    case 'metadata.namespace':
      return pod.metadata?.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata?.uid ?? '';
    case 'metadata.labels':
      return formatMap(pod.metadata?.labels);
    case 'metadata.annotations':
      return formatMap(pod.metadata?.annotations);
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'status.hostIP':
    case 'status.hostIPs':
      return hostIP !== '' ? hostIP : (pod.status?.hostIP ?? '');
    case 'status.podIP':
    case 'status.podIPs':
      return podIP;
    default:
      throw new PodConfigError(CONFIG_ERROR, `unsupported fieldPath: ${fieldPath}`);
  }
}

/** A container's request for a resource, or its limit when it sets no request (what the API server defaults it to). */
export function effectiveRequest(container: Container, resource: string): string | undefined {
  return container.resources?.requests?.[resource] ?? container.resources?.limits?.[resource];
}

/**
 * The value of a resourceFieldRef (resource.ExtractContainerResourceValue):
 * limits.* / requests.* of cpu, memory or ephemeral-storage, divided by the
 * divisor (default 1) and rounded up; a missing limit reads the node's
 * allocatable amount (kubelet defaultPodLimitsForDownwardAPI).
 */
export function resourceFieldValue(container: Container, resourceField: string, divisor: string | undefined, nodeAllocatable: Readonly<Record<string, string>> = {}): string {
  const match = /^(limits|requests)\.(cpu|memory|ephemeral-storage)$/.exec(resourceField);
  if (match === null) throw new PodConfigError(CONFIG_ERROR, `unsupported container resource : ${resourceField}`);
  const [, kind = '', resource = ''] = match;
  const amount = kind === 'limits' ? (container.resources?.limits?.[resource] ?? nodeAllocatable[resource]) : effectiveRequest(container, resource);
  const scale = resource === 'cpu' ? 'milli' : 'unit';
  const value = parseQuantity(amount ?? '0', scale) ?? 0;
  const parsedDivisor = divisor === undefined || divisor === '' ? undefined : parseQuantity(divisor, scale);
  const by = parsedDivisor === undefined || parsedDivisor === 0 ? (scale === 'milli' ? 1000 : 1) : parsedDivisor;
  return String(Math.ceil(value / by));
}

// ------------------------------------------------------------ the environment

interface Lookup {
  readonly pod: Pod;
  readonly sources: EnvSources;
  readonly secretValues: Map<string, Map<string, string>>;
}

function configMapOf(lookup: Lookup, name: string, optional: boolean): ConfigMap | undefined {
  const configMap = lookup.sources.configMaps.get(name);
  if (configMap === undefined && !optional) throw new PodConfigError(CONFIG_ERROR, `configmap "${name}" not found`);
  return configMap;
}

function secretOf(lookup: Lookup, name: string, optional: boolean): Map<string, string> | undefined {
  const cached = lookup.secretValues.get(name);
  if (cached !== undefined) return cached;
  const secret = lookup.sources.secrets.get(name);
  if (secret === undefined) {
    if (!optional) throw new PodConfigError(CONFIG_ERROR, `secret "${name}" not found`);
    return undefined;
  }
  let values: Map<string, string>;
  try {
    values = secretStrings(secret);
  } catch (error) {
    throw new PodConfigError(CONFIG_ERROR, `secret "${name}": ${error instanceof Error ? error.message : String(error)}`);
  }
  lookup.secretValues.set(name, values);
  return values;
}

/** envFrom, in order: every key (with the prefix) that is a variable name; later sources win. */
function addEnvFrom(lookup: Lookup, container: Container, into: Map<string, string>, warnings: string[]): void {
  const namespace = lookup.pod.metadata?.namespace ?? '';
  for (const source of container.envFrom ?? []) {
    const prefix = source.prefix ?? '';
    let entries: Iterable<[string, string]> | undefined;
    let what: string;
    if (source.configMapRef !== undefined) {
      const name = source.configMapRef.name ?? '';
      what = `configMap ${namespace}/${name}`;
      entries = Object.entries(configMapOf(lookup, name, source.configMapRef.optional === true)?.data ?? {});
    } else if (source.secretRef !== undefined) {
      const name = source.secretRef.name ?? '';
      what = `secret ${namespace}/${name}`;
      entries = secretOf(lookup, name, source.secretRef.optional === true)?.entries();
    } else continue;
    const invalid: string[] = [];
    for (const [key, value] of entries ?? []) {
      const name = prefix + key;
      if (ENV_VAR_NAME.test(name)) into.set(name, value);
      else invalid.push(name);
    }
    if (invalid.length > 0) warnings.push(`Keys [${invalid.sort().join(', ')}] from the EnvFrom ${what} were skipped since they are considered invalid environment variable names.`);
  }
}

/** One env entry's valueFrom; undefined when an optional source or key is missing (the variable is then left out). */
function valueFrom(lookup: Lookup, container: Container, source: NonNullable<NonNullable<Container['env']>[number]['valueFrom']>): string | undefined {
  const namespace = lookup.pod.metadata?.namespace ?? '';
  if (source.fieldRef !== undefined) return fieldPathValue(lookup.pod, source.fieldRef.fieldPath ?? '', lookup.sources.podIP, lookup.sources.hostIP);
  if (source.resourceFieldRef !== undefined) {
    const named = source.resourceFieldRef.containerName;
    const all = [...(lookup.pod.spec?.containers ?? []), ...(lookup.pod.spec?.initContainers ?? [])];
    const target = named === undefined || named === '' ? container : all.find((candidate) => candidate.name === named);
    if (target === undefined) throw new PodConfigError(CONFIG_ERROR, `resourceFieldRef: no container named "${named ?? ''}"`);
    return resourceFieldValue(target, source.resourceFieldRef.resource ?? '', source.resourceFieldRef.divisor, lookup.sources.nodeAllocatable);
  }
  if (source.configMapKeyRef !== undefined) {
    const { name = '', key = '' } = source.configMapKeyRef;
    const optional = source.configMapKeyRef.optional === true;
    const configMap = configMapOf(lookup, name, optional);
    if (configMap === undefined) return undefined;
    const value = configMap.data?.[key];
    if (value === undefined && !optional) throw new PodConfigError(CONFIG_ERROR, `couldn't find key ${key} in ConfigMap ${namespace}/${name}`);
    return value;
  }
  if (source.secretKeyRef !== undefined) {
    const { name = '', key = '' } = source.secretKeyRef;
    const optional = source.secretKeyRef.optional === true;
    const values = secretOf(lookup, name, optional);
    if (values === undefined) return undefined;
    const value = values.get(key);
    if (value === undefined && !optional) throw new PodConfigError(CONFIG_ERROR, `couldn't find key ${key} in Secret ${namespace}/${name}`);
    return value;
  }
  return '';
}

/**
 * A container's environment as the kubelet builds it: envFrom first, then
 * env in order (a value has its $(VAR) references expanded from the
 * variables so far and the Service variables; valueFrom is resolved), then
 * the Service variables the container did not set itself. Throws
 * PodConfigError('CreateContainerConfigError') for a missing ConfigMap,
 * Secret or key that is not optional, or an unsupported field.
 */
export function containerEnvironment(pod: Pod, container: Container, sources: EnvSources): ContainerEnvironment {
  const lookup: Lookup = { pod, sources, secretValues: new Map() };
  const services = serviceEnvironment(sources.services, pod.metadata?.namespace ?? '', pod.spec?.enableServiceLinks !== false);
  const variables = new Map<string, string>();
  const warnings: string[] = [];
  addEnvFrom(lookup, container, variables, warnings);
  const mapping = mappingFor(variables, services);
  for (const variable of container.env ?? []) {
    const name = variable.name ?? '';
    let value: string | undefined = variable.value ?? '';
    if (value !== '') value = expand(value, mapping);
    else if (variable.valueFrom !== undefined) value = valueFrom(lookup, container, variable.valueFrom);
    if (value !== undefined) variables.set(name, value);
  }
  const env: EnvVariable[] = [...variables].map(([name, value]) => ({ name, value }));
  for (const [name, value] of services) if (!variables.has(name)) env.push({ name, value });
  return { env, warnings };
}
