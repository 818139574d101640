// The Endpoints controller's decision, as a pure function: for a Service
// with a selector, the pods it selects become addresses — ready ones under
// `addresses`, the rest under `notReadyAddresses` (all count as ready with
// spec.publishNotReadyAddresses) — each with the Service's ports resolved
// against the pod: a numeric targetPort as is, a named one through the
// pod's container ports (a pod without that port name is left out of that
// port). Pods with the same resolved ports share a subset, as Kubernetes
// packs them. Terminating pods and pods without an IP are not endpoints.
// Deterministic order throughout, so an unchanged world compares equal and
// the controller writes nothing.

import type { Endpoints, EndpointAddress, EndpointPort, EndpointSubset, Pod, Service } from '../../../proto/gen/resources/v1/core.js';

function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>> | undefined): boolean {
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

function isReady(pod: Pod): boolean {
  return (pod.status?.conditions ?? []).some((condition) => condition.type === 'Ready' && condition.status === 'True');
}

/** The Service's ports as they reach this pod (named target ports looked up in its containers). */
function portsFor(service: Service, pod: Pod): EndpointPort[] {
  const ports: EndpointPort[] = [];
  for (const port of service.spec?.ports ?? []) {
    const target = port.targetPort ?? port.port;
    let number: number | undefined;
    if (typeof target === 'number') number = target;
    else if (typeof target === 'string' && /^\d+$/.test(target)) number = Number(target);
    else if (typeof target === 'string') {
      for (const container of pod.spec?.containers ?? []) {
        const found = (container.ports ?? []).find((candidate) => candidate.name === target && (candidate.protocol ?? 'TCP') === (port.protocol ?? 'TCP'));
        if (found?.containerPort !== undefined) number = found.containerPort;
      }
    }
    if (number === undefined) continue;
    ports.push({ ...(port.name ? { name: port.name } : {}), port: number, protocol: port.protocol ?? 'TCP', ...(port.appProtocol ? { appProtocol: port.appProtocol } : {}) });
  }
  return ports.sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '') || (a.port ?? 0) - (b.port ?? 0));
}

function addressOf(service: Service, pod: Pod): EndpointAddress {
  const meta = pod.metadata ?? {};
  const hostname = pod.spec?.hostname !== undefined && pod.spec.subdomain === service.metadata?.name ? pod.spec.hostname : undefined;
  return {
    ip: pod.status?.podIP ?? '',
    ...(hostname === undefined ? {} : { hostname }),
    ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
    targetRef: { kind: 'Pod', namespace: meta.namespace ?? '', name: meta.name ?? '', uid: meta.uid ?? '' },
  };
}

const byIp = (a: EndpointAddress, b: EndpointAddress): number => (a.ip ?? '').localeCompare(b.ip ?? '', 'en', { numeric: true });

/** The Endpoints a Service should have; undefined when it has no selector (its endpoints are the user's). */
export function desiredEndpoints(service: Service, pods: readonly Pod[]): Endpoints | undefined {
  const selector = service.spec?.selector;
  if (selector === undefined || Object.keys(selector).length === 0) return undefined;
  const namespace = service.metadata?.namespace ?? 'default';
  const publishNotReady = service.spec?.publishNotReadyAddresses === true;
  const subsets = new Map<string, { ports: EndpointPort[]; ready: EndpointAddress[]; notReady: EndpointAddress[] }>();
  for (const pod of pods) {
    if (pod.metadata?.namespace !== namespace || pod.metadata.deletionTimestamp !== undefined) continue;
    if (!selects(selector, pod.metadata.labels) || (pod.status?.podIP ?? '') === '') continue;
    const ports = portsFor(service, pod);
    if ((service.spec?.ports ?? []).length > 0 && ports.length === 0) continue;
    const key = JSON.stringify(ports);
    let subset = subsets.get(key);
    if (subset === undefined) {
      subset = { ports, ready: [], notReady: [] };
      subsets.set(key, subset);
    }
    (publishNotReady || isReady(pod) ? subset.ready : subset.notReady).push(addressOf(service, pod));
  }
  const packed: EndpointSubset[] = [...subsets.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([, subset]) => ({
      ...(subset.ready.length > 0 ? { addresses: subset.ready.sort(byIp) } : {}),
      ...(subset.notReady.length > 0 ? { notReadyAddresses: subset.notReady.sort(byIp) } : {}),
      ports: subset.ports,
    }));
  return {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: service.metadata?.name ?? '', namespace, ...(service.metadata?.labels ? { labels: { ...service.metadata.labels } } : {}) },
    subsets: packed,
  };
}

/** Whether the stored Endpoints already say what `desired` says (labels and subsets). */
export function endpointsMatch(current: Endpoints, desired: Endpoints): boolean {
  const canonical = (endpoints: Endpoints): string => JSON.stringify({ labels: endpoints.metadata?.labels ?? {}, subsets: endpoints.subsets ?? [] });
  return canonical(current) === canonical(desired);
}
