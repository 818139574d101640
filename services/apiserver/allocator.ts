// Cluster IPs and node ports for Services, unique across the cluster. Each
// assigned value is a key of its own (/registry/ranges/serviceips/<ip>,
// /registry/ranges/servicenodeports/<protocol>/<port>), created in the same
// transaction as the Service only if it does not exist yet: two masters
// picking the same free value at once cannot both win, and the loser picks
// again. Deleting the Service deletes its keys in the same transaction.
// Choosing values is pure given the set in use.

import { isJsonObject, type FieldError, type Json } from './schema.js';

export interface AllocatorConfig {
  /** CIDR of cluster IPs, e.g. 10.96.0.0/12. */
  readonly serviceCidr: string;
  /** Inclusive node port range, e.g. [30000, 32767]. */
  readonly nodePortRange: readonly [number, number];
}

export const SERVICE_IP_PREFIX = '/registry/ranges/serviceips/';
export const NODE_PORT_PREFIX = '/registry/ranges/servicenodeports/';

type Obj = Record<string, Json>;

export function parseCidr(cidr: string): { base: number; size: number } {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  const octets = match?.slice(1, 5).map(Number) ?? [];
  const bits = Number(match?.[5]);
  if (match === null || octets.some((octet) => octet > 255) || bits < 8 || bits > 30) throw new Error(`"${cidr}" is not an IPv4 CIDR with a prefix of /8 to /30`);
  const address = octets.reduce((value, octet) => value * 256 + octet, 0);
  const size = 2 ** (32 - bits);
  return { base: address - (address % size), size };
}

export function ipToNumber(ip: string): number | undefined {
  const octets = ip.split('.');
  if (octets.length !== 4 || octets.some((octet) => !/^\d{1,3}$/.test(octet) || Number(octet) > 255)) return undefined;
  return octets.reduce((value, octet) => value * 256 + Number(octet), 0);
}

export function numberToIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

function ports(spec: Obj): Obj[] {
  return Array.isArray(spec.ports) ? (spec.ports as Json[]).filter(isJsonObject) : [];
}

/** The allocation keys a stored Service holds. */
export function allocationKeys(service: Obj): string[] {
  const spec = isJsonObject(service.spec) ? service.spec : {};
  const keys: string[] = [];
  if (typeof spec.clusterIP === 'string' && spec.clusterIP !== '' && spec.clusterIP !== 'None') keys.push(`${SERVICE_IP_PREFIX}${spec.clusterIP}`);
  for (const port of ports(spec)) if (typeof port.nodePort === 'number') keys.push(`${NODE_PORT_PREFIX}${String(port.protocol ?? 'TCP')}/${port.nodePort}`);
  return keys;
}

/**
 * Fill in a Service's clusterIP and node ports (mutates), checking the ones
 * the user chose. `used` holds the allocation keys in use by other Services;
 * `current` is the stored Service on an update (its values are kept when
 * the update omits them). New values are the first free ones from `start`
 * (in [0, 1): that fraction into the range, wrapping), so callers that pass
 * a random start — as the registry does — rarely pick the same value at once
 * (Kubernetes' allocators pick at random for the same reason).
 */
export function assign(service: Obj, config: AllocatorConfig, used: ReadonlySet<string>, current?: Obj, start = 0): FieldError[] {
  const spec = isJsonObject(service.spec) ? service.spec : {};
  const currentSpec = current !== undefined && isJsonObject(current.spec) ? current.spec : undefined;
  const errors: FieldError[] = [];
  const { base, size } = parseCidr(config.serviceCidr);
  if (spec.type === 'ExternalName') {
    delete spec.clusterIP;
  } else if (spec.clusterIP === undefined || spec.clusterIP === '') {
    if (typeof currentSpec?.clusterIP === 'string') spec.clusterIP = currentSpec.clusterIP;
    else {
      // The first and last addresses of the range are the network's and the broadcast's.
      const usable = size - 2;
      const first = Math.floor(start * usable);
      let picked: string | undefined;
      for (let step = 0; step < usable && picked === undefined; step++) {
        const ip = numberToIp(base + 1 + ((first + step) % usable));
        if (!used.has(`${SERVICE_IP_PREFIX}${ip}`)) picked = ip;
      }
      if (picked === undefined) errors.push({ path: 'spec.clusterIP', message: `Internal error: no cluster IP left in ${config.serviceCidr}` });
      else spec.clusterIP = picked;
    }
  } else if (spec.clusterIP !== 'None') {
    const value = typeof spec.clusterIP === 'string' ? ipToNumber(spec.clusterIP) : undefined;
    if (value === undefined || value <= base || value >= base + size - 1) {
      errors.push({ path: 'spec.clusterIP', message: `Invalid value: ${JSON.stringify(spec.clusterIP)}: must be an address in the service range ${config.serviceCidr}` });
    } else if (used.has(`${SERVICE_IP_PREFIX}${String(spec.clusterIP)}`) && currentSpec?.clusterIP !== spec.clusterIP) {
      errors.push({ path: 'spec.clusterIP', message: `Invalid value: "${String(spec.clusterIP)}": provided IP is already allocated` });
    }
  }
  if (typeof spec.clusterIP === 'string' && spec.clusterIP !== 'None') spec.clusterIPs = [spec.clusterIP];
  const wantsNodePorts = spec.type === 'NodePort' || spec.type === 'LoadBalancer';
  const [low, high] = config.nodePortRange;
  const taken = new Set(used);
  ports(spec).forEach((port, index) => {
    if (!wantsNodePorts) return;
    const protocol = String(port.protocol ?? 'TCP');
    if (port.nodePort === undefined) {
      const previous = ports(currentSpec ?? {}).find((old) => old.port === port.port && String(old.protocol ?? 'TCP') === protocol)?.nodePort;
      if (typeof previous === 'number') port.nodePort = previous;
    }
    if (port.nodePort === undefined) {
      const count = high - low + 1;
      const first = Math.floor(start * count);
      for (let step = 0; step < count; step++) {
        const candidate = low + ((first + step) % count);
        if (!taken.has(`${NODE_PORT_PREFIX}${protocol}/${candidate}`)) {
          port.nodePort = candidate;
          break;
        }
      }
      if (port.nodePort === undefined) errors.push({ path: `spec.ports[${index}].nodePort`, message: `Internal error: no node port left in ${low}-${high}` });
    } else if (typeof port.nodePort !== 'number' || port.nodePort < low || port.nodePort > high) {
      errors.push({ path: `spec.ports[${index}].nodePort`, message: `Invalid value: ${JSON.stringify(port.nodePort)}: provided port is not in the valid range. The range of valid ports is ${low}-${high}` });
    } else if (taken.has(`${NODE_PORT_PREFIX}${protocol}/${port.nodePort}`) && !allocationKeys(current ?? {}).includes(`${NODE_PORT_PREFIX}${protocol}/${port.nodePort}`)) {
      errors.push({ path: `spec.ports[${index}].nodePort`, message: `Invalid value: ${port.nodePort}: provided port is already allocated` });
    }
    if (typeof port.nodePort === 'number') taken.add(`${NODE_PORT_PREFIX}${protocol}/${port.nodePort}`);
  });
  return errors;
}
