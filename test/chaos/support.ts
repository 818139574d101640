// What the chaos tests read back from a running cluster: the masters' JSON
// log files (leadership changes and the audit of every write an in-master
// scheduler or controller-manager got accepted, with --log-level=debug), and
// a ledger of the pods a watch delivered (how many were alive at once,
// whether any changed node once bound).

import { readFileSync } from 'node:fs';
import { AUDIT_LINE, type Component } from '../../services/master/candidates.js';
import type { KubeObject } from '../../services/client/resources.js';

/** One line of a master's log file: its time (ms since the epoch; NaN when the line has none) and message. */
export interface LogEntry {
  readonly ts: number;
  readonly msg: string;
}

/**
 * The lines of a master's log file, one per complete line (JSON lines give
 * their "ts" and "msg"; anything else is kept as written, with no time). A
 * line still being written is left out, so a count taken now is a safe place
 * to resume from.
 */
export function logEntries(file: string): LogEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n');
  lines.pop();
  return lines.map((line) => {
    try {
      const parsed = JSON.parse(line) as { ts?: unknown; msg?: unknown };
      return { ts: typeof parsed.ts === 'string' ? Date.parse(parsed.ts) : Number.NaN, msg: typeof parsed.msg === 'string' ? parsed.msg : line };
    } catch {
      return { ts: Number.NaN, msg: line };
    }
  });
}

/** The messages of a master's log file (see logEntries). */
export function logMessages(file: string): string[] {
  return logEntries(file).map((entry) => entry.msg);
}

export interface AuditedWrite {
  readonly component: Component;
  readonly verb: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  /** The revision that committed the write. */
  readonly resourceVersion: number;
  /** The fencing token the write carried (undefined: none). */
  readonly token: number | undefined;
}

/** An accepted write, from its audit line (undefined for any other line). */
export function auditedWrite(message: string): AuditedWrite | undefined {
  const match = AUDIT_LINE.exec(message);
  if (match === null) return undefined;
  return {
    component: match[1] as Component,
    verb: match[2]!,
    kind: match[3]!,
    namespace: match[4]!,
    name: match[5]!,
    resourceVersion: Number(match[6]),
    token: match[7] === 'none' ? undefined : Number(match[7]),
  };
}

export type LeaseName = 'kube-scheduler' | 'kube-controller-manager';

export const LEASE_OF: Readonly<Record<Component, LeaseName>> = { scheduler: 'kube-scheduler', 'controller-manager': 'kube-controller-manager' };

export interface Takeover {
  readonly identity: string;
  readonly lease: LeaseName;
  readonly token: number;
}

const HOLDS = /^leader election: (\S+) now holds kube-system\/(kube-scheduler|kube-controller-manager) \(fencing token (\d+)\)$/;

/** A candidate's "now holds" line (undefined for any other line). */
export function takeover(message: string): Takeover | undefined {
  const match = HOLDS.exec(message);
  return match === null ? undefined : { identity: match[1]!, lease: match[2] as LeaseName, token: Number(match[3]) };
}

/** The master a holder identity (`<master>_<random>`) belongs to (the random part may hold '_' too; master names do not). */
export function hostOf(identity: string): string {
  const cut = identity.indexOf('_');
  return cut < 0 ? identity : identity.slice(0, cut);
}

/**
 * Every time a watch on Nodes saw one stop being Ready (the node lifecycle
 * controller judged it silent): the evidence when a rollout stalls on pods
 * it then marked not ready.
 */
export class NodeReadiness {
  revision = 0;
  readonly transitions: string[] = [];
  private readonly ready = new Map<string, string>();

  observe(type: string, node: KubeObject, phaseLabel: string): void {
    this.revision = Math.max(this.revision, Number(node.metadata?.resourceVersion ?? 0));
    if (type === 'BOOKMARK' || type === 'DELETED') return;
    const name = node.metadata?.name ?? '';
    const conditions = (node.status as { conditions?: Array<{ type?: string; status?: string }> } | undefined)?.conditions ?? [];
    const status = conditions.find((condition) => condition.type === 'Ready')?.status ?? '';
    const before = this.ready.get(name);
    if (before !== undefined && before !== status) this.transitions.push(`${new Date().toISOString()} (${phaseLabel}) node ${name} Ready ${before} -> ${status === '' ? 'none' : status}`);
    this.ready.set(name, status);
  }

  get flaps(): number {
    return this.transitions.filter((transition) => !transition.endsWith('-> True')).length;
  }
}

interface PodEntry {
  readonly node: string;
  readonly live: boolean;
}

/**
 * What a watch on the pods of one workload saw, event by event: the most
 * pods alive (not terminating, not finished) at once, and every pod whose
 * nodeName changed once set (a double binding).
 */
export class PodLedger {
  events = 0;
  maxLive = 0;
  /** When maxLive was reached, for the report. */
  maxLiveAt = '';
  readonly doubleBindings: string[] = [];
  /** Every pod ever seen, by uid: the node it was first bound to ('' until bound). */
  private readonly boundTo = new Map<string, string>();
  private readonly pods = new Map<string, PodEntry>();

  constructor(private readonly selects: (pod: KubeObject) => boolean) {}

  get live(): number {
    let count = 0;
    for (const pod of this.pods.values()) if (pod.live) count++;
    return count;
  }

  get seen(): number {
    return this.boundTo.size;
  }

  get bound(): number {
    let count = 0;
    for (const node of this.boundTo.values()) if (node !== '') count++;
    return count;
  }

  /** The newest resourceVersion the watch delivered (bookmarks included): how far the ledger is complete. */
  revision = 0;

  observe(type: string, pod: KubeObject, phaseLabel: string): void {
    this.revision = Math.max(this.revision, Number(pod.metadata?.resourceVersion ?? 0));
    if (type === 'BOOKMARK') return;
    this.events++;
    const metadata = pod.metadata as (KubeObject['metadata'] & { uid?: string; deletionTimestamp?: string }) | undefined;
    const uid = metadata?.uid ?? `${metadata?.namespace ?? ''}/${metadata?.name ?? ''}`;
    const node = (pod.spec as { nodeName?: string } | undefined)?.nodeName ?? '';
    const phase = (pod.status as { phase?: string } | undefined)?.phase ?? '';
    const before = this.boundTo.get(uid);
    if (node !== '') {
      if (before !== undefined && before !== '' && before !== node) this.doubleBindings.push(`${metadata?.namespace ?? ''}/${metadata?.name ?? ''} (uid ${uid}): bound to ${before}, then to ${node}`);
      if (before === undefined || before === '') this.boundTo.set(uid, node);
    } else if (before === undefined) {
      this.boundTo.set(uid, '');
    } else if (before !== '' && type !== 'DELETED') {
      this.doubleBindings.push(`${metadata?.namespace ?? ''}/${metadata?.name ?? ''} (uid ${uid}): bound to ${before}, then unbound`);
    }
    if (!this.selects(pod)) return;
    if (type === 'DELETED') this.pods.delete(uid);
    else this.pods.set(uid, { node, live: metadata?.deletionTimestamp === undefined && phase !== 'Succeeded' && phase !== 'Failed' });
    const live = this.live;
    if (live > this.maxLive) {
      this.maxLive = live;
      this.maxLiveAt = phaseLabel;
    }
  }
}
