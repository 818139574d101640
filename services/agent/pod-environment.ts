// What the agent hands the runtime for a pod, built as the kubelet builds it
// (pkg/kubelet/kuberuntime: generatePodSandboxConfig,
// generateContainerConfig; pkg/kubelet/network/dns; pkg/kubelet/qos):
// the sandbox's metadata, hostname, log directory, DNS, host ports, labels
// and Linux settings; a container's image, command, environment (env.ts),
// mounts (volumes.ts), log path, labels, annotations (with the hash the
// worker compares to notice a changed spec) and resources.
//
// Kubernetes' container hash is fnv-32a over a JSON of the container (name and
// image since 1.28); here it covers the whole spec, so any change counts.

import { mkdirSync, readFileSync } from 'node:fs';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import {
  ContainerConfig,
  NamespaceMode,
  PodSandboxConfig,
  Protocol,
  SecurityProfile_ProfileType,
  type DNSConfig,
  type LinuxContainerResources,
  type LinuxContainerSecurityContext,
  type Mount,
  type NamespaceOption,
  type PortMapping,
  type SecurityProfile,
} from '../../proto/gen/cri/v1/api.js';
import type { ConfigMap, Container, Pod, PodDNSConfig, SeccompProfile, Secret, Service } from '../../proto/gen/resources/v1/core.js';
import { parseQuantity } from '../client/quantity.js';
import { containerEnvironment, effectiveRequest, envReferences, expandCommandAndArgs, type EnvVariable } from './env.js';
import { ANNOTATION_CONTAINER_HASH, ANNOTATION_RESTART_COUNT, containerSpecHash, LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID } from './pod-actions.js';
import { PodConfigError, type PodEnvironment } from './pod-environment-types.js';
import { VolumeManager, type VolumeObjects } from './volumes.js';
import { DEFAULT_CGROUP_ROOT, podCgroupParent } from './pod-cgroups.js';

type Maybe<T> = T | undefined | Promise<T | undefined>;

/** The API objects a pod's environment reads (the agent backs them with informer caches). */
export interface PodObjects extends VolumeObjects {
  /** The Services of a namespace that exist now. */
  listServices(namespace: string): Maybe<readonly Service[]>;
}

export interface NodePodEnvironmentOptions {
  readonly rootDir: string;
  readonly nodeName: string;
  readonly objects: PodObjects;
  /** The node's InternalIP (status.hostIP for the downward API). */
  readonly hostIP: string;
  /** Where pod log directories go (default <rootDir>/logs; the kubelet's /var/log/pods). */
  readonly logRoot?: string;
  /** Nameservers for dnsPolicy ClusterFirst (none: pods get the host's DNS, as the kubelet falls back). */
  readonly clusterDNS?: readonly string[];
  readonly clusterDomain?: string;
  /** The host's resolver file for dnsPolicy Default ("" = none: 127.0.0.1 and search "."; default /etc/resolv.conf). */
  readonly resolvConf?: string;
  /** Pods' cgroup parent is <cgroupRoot>/pod<uid> (default /mast; "" = no cgroup parent, the runtime's default). */
  readonly cgroupRoot?: string;
  /** The node's allocatable resources: what resourceFieldRef limits read when a container sets none. */
  readonly nodeAllocatable?: () => Readonly<Record<string, string>>;
  /** For Burstable containers' OOM score (default: the machine's memory). */
  readonly memoryCapacityBytes?: number;
  readonly nodeLabels?: () => Readonly<Record<string, string>>;
  readonly now?: () => Date;
  /** Problems the kubelet reports as Warning events without failing (invalid envFrom keys). */
  readonly onWarning?: (pod: Pod, reason: string, message: string) => void;
}

// The labels and annotations adoption depends on are the worker's (pod-actions.ts).
export { ANNOTATION_CONTAINER_HASH, ANNOTATION_RESTART_COUNT, LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID };
export const ANNOTATION_TERMINATION_MESSAGE_PATH = 'io.kubernetes.container.terminationMessagePath';
export const ANNOTATION_TERMINATION_MESSAGE_POLICY = 'io.kubernetes.container.terminationMessagePolicy';
export const ANNOTATION_TERMINATION_GRACE_PERIOD = 'io.kubernetes.pod.terminationGracePeriod';
export const ANNOTATION_DELETION_GRACE_PERIOD = 'io.kubernetes.pod.deletionGracePeriod';
export const ANNOTATION_CONTAINER_PORTS = 'io.kubernetes.container.ports';

const CONFIG_ERROR = 'CreateContainerConfigError';
const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS = 30;

// ------------------------------------------------------------ pure helpers

/**
 * The io.kubernetes.container.hash of a container: the worker's
 * containerSpecHash (FNV-1a over the spec's canonical JSON, keys sorted), so
 * the annotation written here and the one the worker compares are one.
 */
export function containerHash(container: Container): string {
  return containerSpecHash(container);
}

export type QOSClass = 'Guaranteed' | 'Burstable' | 'BestEffort';

/**
 * Kubernetes' ComputePodQOS over cpu and memory of every container and
 * init container (a limit without a request counts as the request, as the
 * API server defaults it).
 */
export function podQOSClass(pod: Pod): QOSClass {
  const requests = new Map<string, number>();
  const limits = new Map<string, number>();
  let guaranteed = true;
  for (const container of [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])]) {
    let limited = 0;
    for (const resource of ['cpu', 'memory']) {
      const scale = resource === 'cpu' ? 'milli' : 'unit';
      const request = parseQuantity(effectiveRequest(container, resource), scale) ?? 0;
      if (request > 0) requests.set(resource, (requests.get(resource) ?? 0) + request);
      const limit = parseQuantity(container.resources?.limits?.[resource], scale) ?? 0;
      if (limit > 0) {
        limited++;
        limits.set(resource, (limits.get(resource) ?? 0) + limit);
      }
    }
    if (limited < 2) guaranteed = false;
  }
  if (requests.size === 0 && limits.size === 0) return 'BestEffort';
  if (guaranteed && requests.size === limits.size && [...requests].every(([resource, amount]) => limits.get(resource) === amount)) return 'Guaranteed';
  return 'Burstable';
}

const GUARANTEED_OOM_SCORE_ADJ = -997;
const BESTEFFORT_OOM_SCORE_ADJ = 1000;

/** qos.GetContainerOOMScoreAdjust: -997 Guaranteed (and node-critical pods), 1000 BestEffort, Burstable by its share of the node's memory. */
export function containerOOMScoreAdjust(pod: Pod, container: Container, memoryCapacityBytes: number): number {
  if (pod.spec?.priorityClassName === 'system-node-critical') return GUARANTEED_OOM_SCORE_ADJ;
  const qos = podQOSClass(pod);
  if (qos === 'Guaranteed') return GUARANTEED_OOM_SCORE_ADJ;
  if (qos === 'BestEffort') return BESTEFFORT_OOM_SCORE_ADJ;
  const memoryRequest = parseQuantity(effectiveRequest(container, 'memory'), 'unit') ?? 0;
  const adjust = memoryCapacityBytes > 0 ? 1000 - Math.trunc((1000 * memoryRequest) / memoryCapacityBytes) : 1000;
  if (adjust < 1000 + GUARANTEED_OOM_SCORE_ADJ) return 1000 + GUARANTEED_OOM_SCORE_ADJ;
  if (adjust === BESTEFFORT_OOM_SCORE_ADJ) return adjust - 1;
  return adjust;
}

/** cm.MilliCPUToShares. */
export function milliCPUToShares(milliCPU: number): number {
  if (milliCPU === 0) return 2;
  return Math.min(262_144, Math.max(2, Math.trunc((milliCPU * 1024) / 1000)));
}

export const CPU_PERIOD_US = 100_000;

/** milliCPUToQuota: 0 (no quota) without a limit, at least 1 ms. */
export function milliCPUToQuota(milliCPU: number, periodUs = CPU_PERIOD_US): number {
  if (milliCPU === 0) return 0;
  return Math.max(1000, Math.trunc((milliCPU * periodUs) / 1000));
}

/** generateLinuxContainerResources: shares from the cpu request (else limit), CFS quota from the cpu limit, memory limit, OOM score. */
export function linuxContainerResources(pod: Pod, container: Container, memoryCapacityBytes: number): LinuxContainerResources {
  const cpuRequest = parseQuantity(container.resources?.requests?.cpu, 'milli');
  const cpuLimit = parseQuantity(container.resources?.limits?.cpu, 'milli') ?? 0;
  return {
    cpuShares: milliCPUToShares(cpuRequest === undefined && cpuLimit !== 0 ? cpuLimit : (cpuRequest ?? 0)),
    cpuQuota: milliCPUToQuota(cpuLimit),
    cpuPeriod: CPU_PERIOD_US,
    memoryLimitInBytes: parseQuantity(container.resources?.limits?.memory, 'unit') ?? 0,
    oomScoreAdj: containerOOMScoreAdjust(pod, container, memoryCapacityBytes),
    cpusetCpus: '',
    cpusetMems: '',
    hugepageLimits: [],
    unified: {},
    memorySwapLimitInBytes: 0,
  };
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_HOSTNAME_LENGTH = 63;

/** GeneratePodHostNameAndDomain: spec.hostname or the pod name (cut to 63), and <subdomain>.<ns>.svc.<domain> when a subdomain is set. */
export function podHostnameAndDomain(pod: Pod, clusterDomain: string): { hostname: string; domain: string } {
  let hostname = pod.metadata?.name ?? '';
  const wanted = pod.spec?.hostname ?? '';
  if (wanted !== '') {
    if (!DNS1123_LABEL.test(wanted) || wanted.length > MAX_HOSTNAME_LENGTH) throw new PodConfigError(CONFIG_ERROR, `pod Hostname "${wanted}" is not a valid DNS label`);
    hostname = wanted;
  }
  if (hostname.length > MAX_HOSTNAME_LENGTH) hostname = hostname.slice(0, MAX_HOSTNAME_LENGTH).replace(/[-.]+$/, '');
  const subdomain = pod.spec?.subdomain ?? '';
  if (subdomain === '') return { hostname, domain: '' };
  if (!DNS1123_LABEL.test(subdomain) || subdomain.length > MAX_HOSTNAME_LENGTH) throw new PodConfigError(CONFIG_ERROR, `pod Subdomain "${subdomain}" is not a valid DNS label`);
  return { hostname, domain: `${subdomain}.${pod.metadata?.namespace ?? ''}.svc.${clusterDomain}` };
}

export interface HostResolver {
  readonly servers: readonly string[];
  readonly searches: readonly string[];
  readonly options: readonly string[];
}

/** A resolv.conf's nameserver, search (trailing dots dropped, "." skipped) and options lines. */
export function parseResolvConf(text: string): HostResolver {
  const servers: string[] = [];
  let searches: string[] = [];
  const options: string[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    const [keyword, ...rest] = fields;
    if (keyword === undefined || keyword.startsWith('#') || keyword.startsWith(';')) continue;
    if (keyword === 'nameserver' && rest[0] !== undefined) servers.push(rest[0]);
    else if (keyword === 'search') searches = rest.filter((search) => search !== '.').map((search) => search.replace(/\.$/, ''));
    else if (keyword === 'options') options.push(...rest);
  }
  return { servers, searches, options };
}

const omitDuplicates = (items: readonly string[]): string[] => [...new Set(items)];
/** validation limits the kubelet trims to. */
const MAX_DNS_NAMESERVERS = 3;
const MAX_DNS_SEARCH_PATHS = 32;
const MAX_DNS_SEARCH_CHARS = 2048;

function mergeDNSOptions(existing: readonly string[], added: PodDNSConfig['options']): string[] {
  const options = new Map<string, string>();
  for (const option of existing) {
    const at = option.indexOf(':');
    options.set(at < 0 ? option : option.slice(0, at), at < 0 ? '' : option.slice(at + 1));
  }
  for (const option of added ?? []) options.set(option.name ?? '', option.value ?? '');
  return [...options].map(([name, value]) => (value === '' ? name : `${name}:${value}`));
}

/**
 * dns.Configurer.GetPodDNS: ClusterFirst (and ClusterFirstWithHostNet)
 * pods get the cluster nameservers, the searches <ns>.svc.<domain>
 * svc.<domain> <domain> before the host's, and ndots:5; a host-network pod
 * with ClusterFirst, Default, and ClusterFirst without cluster DNS get the
 * host's resolver; None starts empty. spec.dnsConfig is merged in last.
 */
export function podDNSConfig(pod: Pod, host: HostResolver | undefined, clusterDNS: readonly string[], clusterDomain: string): DNSConfig {
  const policy = pod.spec?.dnsPolicy ?? 'ClusterFirst';
  const hostNetwork = pod.spec?.hostNetwork === true;
  const cluster = policy === 'ClusterFirstWithHostNet' || (policy === 'ClusterFirst' && !hostNetwork) || !['None', 'Default', 'ClusterFirst'].includes(policy);
  let servers: string[] = [...(host?.servers ?? [])];
  let searches: string[] = [...(host?.searches ?? [])];
  let options: string[] = [...(host?.options ?? [])];
  if (policy === 'None') {
    servers = [];
    searches = [];
    options = [];
  } else if (cluster && clusterDNS.length > 0) {
    servers = [...clusterDNS];
    if (clusterDomain !== '') searches = omitDuplicates([`${pod.metadata?.namespace ?? ''}.svc.${clusterDomain}`, `svc.${clusterDomain}`, clusterDomain, ...searches]);
    options = ['ndots:5'];
  } else if (host === undefined) {
    servers = ['127.0.0.1'];
    searches = ['.'];
  }
  const extra = pod.spec?.dnsConfig;
  if (extra !== undefined) {
    servers = omitDuplicates([...servers, ...(extra.nameservers ?? [])]);
    searches = omitDuplicates([...searches, ...(extra.searches ?? [])]);
    options = mergeDNSOptions(options, extra.options);
  }
  const limited: string[] = [];
  for (const search of searches) {
    if (limited.length >= MAX_DNS_SEARCH_PATHS || [...limited, search].join(' ').length > MAX_DNS_SEARCH_CHARS) break;
    limited.push(search);
  }
  return { servers: servers.slice(0, MAX_DNS_NAMESERVERS), searches: limited, options };
}

/** NamespacesForPod: the host's network, PID and IPC namespaces when asked; PIDs per container unless shareProcessNamespace. */
export function namespaceOptions(pod: Pod): NamespaceOption {
  const spec = pod.spec;
  return {
    network: spec?.hostNetwork === true ? NamespaceMode.NODE : NamespaceMode.POD,
    pid: spec?.hostPID === true ? NamespaceMode.NODE : spec?.shareProcessNamespace === true ? NamespaceMode.POD : NamespaceMode.CONTAINER,
    ipc: spec?.hostIPC === true ? NamespaceMode.NODE : NamespaceMode.POD,
    targetId: '',
    usernsOptions: undefined,
  };
}

function protocolOf(protocol: string | undefined): Protocol {
  if (protocol === 'UDP') return Protocol.UDP;
  if (protocol === 'SCTP') return Protocol.SCTP;
  return Protocol.TCP;
}

/** kubecontainer.MakePortMappings, for ports with a hostPort (the runtime maps no others); a repeated port name counts once. */
export function portMappings(pod: Pod): PortMapping[] {
  const mappings: PortMapping[] = [];
  for (const container of pod.spec?.containers ?? []) {
    const names = new Set<string>();
    for (const port of container.ports ?? []) {
      const family = port.hostIP === undefined || port.hostIP === '' ? 'any' : port.hostIP.includes(':') ? 'v6' : 'v4';
      const name = port.name !== undefined && port.name !== '' ? port.name : `${family}-${port.protocol ?? ''}-${port.hostIP ?? ''}:${port.containerPort ?? 0}:${port.hostPort ?? 0}`;
      if (names.has(name)) continue;
      names.add(name);
      if ((port.hostPort ?? 0) <= 0) continue;
      mappings.push({ protocol: protocolOf(port.protocol), containerPort: port.containerPort ?? 0, hostPort: port.hostPort ?? 0, hostIp: port.hostIP ?? '' });
    }
  }
  return mappings;
}

function seccompProfile(profile: SeccompProfile | undefined, rootDir: string): SecurityProfile {
  switch (profile?.type) {
    case 'RuntimeDefault':
      return { profileType: SecurityProfile_ProfileType.RuntimeDefault, localhostRef: '' };
    case 'Localhost':
      return { profileType: SecurityProfile_ProfileType.Localhost, localhostRef: join(rootDir, 'seccomp', profile.localhostProfile ?? '') };
    default:
      // The kubelet's default without --seccomp-default.
      return { profileType: SecurityProfile_ProfileType.Unconfined, localhostRef: '' };
  }
}

/** securitycontext.DefaultMaskedPaths and DefaultReadonlyPaths (none with procMount Unmasked). */
const DEFAULT_MASKED_PATHS = ['/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap'];
const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

function supplementalGroups(pod: Pod): number[] {
  const context = pod.spec?.securityContext;
  return [...(context?.fsGroup === undefined ? [] : [context.fsGroup]), ...(context?.supplementalGroups ?? [])];
}

/** determineEffectiveSecurityContext: the container's settings over the pod's. */
export function containerSecurityContext(pod: Pod, container: Container, rootDir: string): LinuxContainerSecurityContext {
  const podContext = pod.spec?.securityContext;
  const own = container.securityContext;
  const runAsUser = own?.runAsUser ?? podContext?.runAsUser;
  const runAsGroup = own?.runAsGroup ?? podContext?.runAsGroup;
  const runAsNonRoot = own?.runAsNonRoot ?? podContext?.runAsNonRoot;
  if (runAsNonRoot === true && runAsUser === 0) {
    throw new PodConfigError(CONFIG_ERROR, `container's runAsUser breaks non-root policy (pod: "${pod.metadata?.name ?? ''}_${pod.metadata?.namespace ?? ''}(${pod.metadata?.uid ?? ''})", container: ${container.name ?? ''})`);
  }
  const unmasked = own?.procMount === 'Unmasked';
  return {
    capabilities: own?.capabilities === undefined ? undefined : { addCapabilities: own.capabilities.add ?? [], dropCapabilities: own.capabilities.drop ?? [], addAmbientCapabilities: [] },
    privileged: own?.privileged === true,
    namespaceOptions: namespaceOptions(pod),
    selinuxOptions: undefined,
    runAsUser: runAsUser === undefined ? undefined : { value: runAsUser },
    runAsGroup: runAsGroup === undefined ? undefined : { value: runAsGroup },
    runAsUsername: '',
    readonlyRootfs: own?.readOnlyRootFilesystem === true,
    supplementalGroups: supplementalGroups(pod),
    supplementalGroupsPolicy: 0,
    noNewPrivs: own?.allowPrivilegeEscalation === false,
    maskedPaths: unmasked ? [] : DEFAULT_MASKED_PATHS,
    readonlyPaths: unmasked ? [] : DEFAULT_READONLY_PATHS,
    seccomp: seccompProfile(own?.seccompProfile ?? podContext?.seccompProfile, rootDir),
    apparmor: undefined,
    apparmorProfile: '',
    seccompProfilePath: '',
  };
}

function gracePeriodAnnotations(pod: Pod): Record<string, string> {
  const annotations: Record<string, string> = { [ANNOTATION_TERMINATION_GRACE_PERIOD]: String(pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS) };
  if (pod.metadata?.deletionGracePeriodSeconds !== undefined) annotations[ANNOTATION_DELETION_GRACE_PERIOD] = String(pod.metadata.deletionGracePeriodSeconds);
  return annotations;
}

function podLabels(pod: Pod): Record<string, string> {
  return { ...pod.metadata?.labels, [LABEL_POD_NAME]: pod.metadata?.name ?? '', [LABEL_POD_NAMESPACE]: pod.metadata?.namespace ?? '', [LABEL_POD_UID]: pod.metadata?.uid ?? '' };
}

// ------------------------------------------------------------ the environment

export class NodePodEnvironment implements PodEnvironment {
  readonly volumes: VolumeManager;
  private readonly logRoot: string;

  constructor(private readonly options: NodePodEnvironmentOptions) {
    this.volumes = new VolumeManager({ rootDir: options.rootDir, objects: options.objects, nodeName: options.nodeName, nodeLabels: options.nodeLabels, now: options.now });
    this.logRoot = resolve(options.logRoot ?? join(options.rootDir, 'logs'));
  }

  /** The pod's log directory: <logRoot>/<namespace>_<name>_<uid>. */
  podLogDirectory(pod: Pod): string {
    return join(this.logRoot, `${pod.metadata?.namespace ?? ''}_${pod.metadata?.name ?? ''}_${pod.metadata?.uid ?? ''}`);
  }

  async prepareVolumes(pod: Pod): Promise<void> {
    await this.volumes.prepare(pod);
  }

  private hostResolver(): HostResolver | undefined {
    const path = this.options.resolvConf ?? '/etc/resolv.conf';
    if (path === '') return undefined;
    try {
      return parseResolvConf(readFileSync(path, 'utf8'));
    } catch {
      // The kubelet fails the pod here; a node without a resolver file is better served by no host nameservers.
      return { servers: [], searches: [], options: [] };
    }
  }

  /** RunPodSandbox's config; makes the pod's log directory (as the kubelet does before RunPodSandbox). */
  sandboxConfig(pod: Pod, attempt: number): PodSandboxConfig {
    const clusterDomain = this.options.clusterDomain ?? 'cluster.local';
    let hostname = '';
    if (pod.spec?.hostNetwork !== true) {
      const named = podHostnameAndDomain(pod, clusterDomain);
      hostname = pod.spec?.setHostnameAsFQDN === true && named.domain !== '' ? `${named.hostname}.${named.domain}` : named.hostname;
    }
    const logDirectory = this.podLogDirectory(pod);
    mkdirSync(logDirectory, { recursive: true, mode: 0o755 });
    const cgroupRoot = this.options.cgroupRoot ?? DEFAULT_CGROUP_ROOT;
    const sysctls = Object.fromEntries((pod.spec?.securityContext?.sysctls ?? []).map((sysctl) => [sysctl.name ?? '', sysctl.value ?? '']));
    const podContext = pod.spec?.securityContext;
    return PodSandboxConfig.fromPartial({
      metadata: { name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '', uid: pod.metadata?.uid ?? '', attempt },
      hostname,
      logDirectory,
      dnsConfig: podDNSConfig(pod, this.hostResolver(), this.options.clusterDNS ?? [], clusterDomain),
      portMappings: portMappings(pod),
      labels: podLabels(pod),
      annotations: { ...pod.metadata?.annotations, ...gracePeriodAnnotations(pod) },
      linux: {
        cgroupParent: podCgroupParent(cgroupRoot, pod.metadata?.uid ?? ''),
        sysctls,
        securityContext: {
          namespaceOptions: namespaceOptions(pod),
          privileged: [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].some((container) => container.securityContext?.privileged === true),
          runAsUser: podContext?.runAsUser === undefined ? undefined : { value: podContext.runAsUser },
          runAsGroup: podContext?.runAsGroup === undefined ? undefined : { value: podContext.runAsGroup },
          supplementalGroups: supplementalGroups(pod),
          seccomp: seccompProfile(podContext?.seccompProfile, this.options.rootDir),
        },
      },
    });
  }

  /** The container's environment: its ConfigMaps, Secrets and the Services fetched, then env.ts. */
  async environment(pod: Pod, container: Container, podIP: string): Promise<EnvVariable[]> {
    const namespace = pod.metadata?.namespace ?? '';
    const references = envReferences(container);
    const configMaps = new Map<string, ConfigMap>();
    const secrets = new Map<string, Secret>();
    for (const name of references.configMaps) {
      const found = await this.options.objects.getConfigMap(namespace, name);
      if (found !== undefined) configMaps.set(name, found);
    }
    for (const name of references.secrets) {
      const found = await this.options.objects.getSecret(namespace, name);
      if (found !== undefined) secrets.set(name, found);
    }
    const services = [...((await this.options.objects.listServices(namespace)) ?? [])];
    if (namespace !== 'default') services.push(...((await this.options.objects.listServices('default')) ?? []).filter((service) => service.metadata?.name === 'kubernetes'));
    const { env, warnings } = containerEnvironment(pod, container, { configMaps, secrets, services, podIP, hostIP: this.options.hostIP, nodeAllocatable: this.options.nodeAllocatable?.() });
    for (const warning of warnings) this.options.onWarning?.(pod, 'InvalidEnvironmentVariableNames', warning);
    return env;
  }

  /** The file the container's terminationMessagePath is mounted from (empty, writable by anyone, fresh per attempt). */
  private async terminationMessageMount(pod: Pod, container: Container, attempt: number): Promise<Mount[]> {
    const path = container.terminationMessagePath ?? '';
    if (path === '') return [];
    const dir = this.volumes.containerDir(pod.metadata?.uid ?? '', container.name ?? '');
    const file = join(dir, `termination-log.${attempt}`);
    try {
      await mkdir(dir, { recursive: true, mode: 0o755 });
      const handle = await open(file, 'w', 0o666);
      await handle.chmod(0o666);
      await handle.close();
    } catch (error) {
      throw new PodConfigError(CONFIG_ERROR, `cannot create the termination message file of container "${container.name ?? ''}": ${error instanceof Error ? error.message : String(error)}`);
    }
    return [{ containerPath: path, hostPath: file, readonly: false, selinuxRelabel: false, propagation: 0, uidMappings: [], gidMappings: [], recursiveReadOnly: false, image: undefined }];
  }

  async containerConfig(pod: Pod, container: Container, options: { readonly attempt: number; readonly podIP: string; readonly init: boolean }): Promise<ContainerConfig> {
    const { attempt } = options;
    const name = container.name ?? '';
    const env = await this.environment(pod, container, options.podIP);
    const { command, args } = expandCommandAndArgs(container, env);
    const mounts = [...(await this.volumes.mounts(pod, container, env)), ...(await this.terminationMessageMount(pod, container, attempt))];
    await mkdir(join(this.podLogDirectory(pod), name), { recursive: true, mode: 0o755 });
    const annotations: Record<string, string> = {
      [ANNOTATION_CONTAINER_HASH]: containerHash(container),
      [ANNOTATION_RESTART_COUNT]: String(attempt),
      [ANNOTATION_TERMINATION_MESSAGE_PATH]: container.terminationMessagePath ?? '',
      [ANNOTATION_TERMINATION_MESSAGE_POLICY]: container.terminationMessagePolicy ?? 'File',
      ...gracePeriodAnnotations(pod),
    };
    if ((container.ports ?? []).length > 0) annotations[ANNOTATION_CONTAINER_PORTS] = JSON.stringify(container.ports);
    return ContainerConfig.fromPartial({
      metadata: { name, attempt },
      image: { image: container.image ?? '', userSpecifiedImage: container.image ?? '' },
      command,
      args,
      workingDir: container.workingDir ?? '',
      envs: env.map((variable) => ({ key: variable.name, value: variable.value })),
      mounts,
      labels: { [LABEL_CONTAINER_NAME]: name, [LABEL_POD_NAME]: pod.metadata?.name ?? '', [LABEL_POD_NAMESPACE]: pod.metadata?.namespace ?? '', [LABEL_POD_UID]: pod.metadata?.uid ?? '' },
      annotations,
      logPath: `${name}/${attempt}.log`,
      stdin: container.stdin === true,
      stdinOnce: container.stdinOnce === true,
      tty: container.tty === true,
      linux: {
        resources: linuxContainerResources(pod, container, this.options.memoryCapacityBytes ?? totalmem()),
        securityContext: containerSecurityContext(pod, container, this.options.rootDir),
      },
    });
  }

  /** Remove what prepareVolumes and containerConfig made under the pod directory (not its logs: removePodLogs). */
  async cleanup(podUid: string): Promise<void> {
    await this.volumes.cleanup(podUid);
  }

  /** Remove the pod's log directory (once the pod is gone from the API: logs outlive the containers until then). */
  async removePodLogs(podUid: string): Promise<void> {
    if (podUid === '' || podUid.includes('/')) return;
    const entries = await readdir(this.logRoot).catch(() => [] as string[]);
    for (const entry of entries) if (entry.endsWith(`_${podUid}`)) await rm(join(this.logRoot, entry), { recursive: true, force: true });
  }
}
