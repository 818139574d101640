// The contract between the proxy's loop (which watches Services and
// Endpoints and computes the desired rules) and the three ways of
// programming them: nftables, IPVS through netlink, and userspace.

import type { ProxyRules, RulesChange } from './rules.js';

export type ProxyMode = 'nftables' | 'ipvs' | 'userspace';

export interface ProxyBackend {
  readonly mode: ProxyMode;
  /** Make the programmed state exactly `rules` (first sync, periodic resync, repair), atomically where the mechanism allows. */
  sync(rules: ProxyRules): Promise<void>;
  /** Apply only `change`; `rules` is the whole desired state after it (the last sync or update plus `change`). */
  update(change: RulesChange, rules: ProxyRules): Promise<void>;
  /** Whether the programmed state still matches the last applied one (false: something removed or altered it by hand; the loop then syncs). */
  verify(): Promise<boolean>;
  /** Remove everything this backend programmed and release its resources. */
  close(): Promise<void>;
}

/** Options every backend takes. */
export interface ProxyBackendOptions {
  /** The node's addresses NodePorts answer on (IPv4). */
  readonly nodeIPs: readonly string[];
  readonly log?: (line: string) => void;
}
