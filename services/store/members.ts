// Member and cluster ids, derived as etcd derives them: from the member's
// peer URLs and the cluster token, so that every member computes the same id
// for a member from the same --initial-cluster, and a member added at runtime
// (known only by its peer URLs) computes its own id when it starts.

import { createHash } from 'node:crypto';
import type { NodeId } from '../../raft/core/index.js';
import type { MemberInfo } from './state-machine.js';

/** 52 bits: every id is a safe JavaScript integer and a valid etcd uint64. */
function hashToId(text: string): number {
  const digest = createHash('sha256').update(text).digest();
  const id = digest.readUIntBE(0, 6) * 16 + (digest[6]! >> 4);
  return id === 0 ? 1 : id;
}

export function memberIdOf(peerUrls: readonly string[], clusterToken: string): NodeId {
  return hashToId(`member\n${[...peerUrls].sort().join(',')}\n${clusterToken}`);
}

export function clusterIdOf(clusterToken: string): number {
  return hashToId(`cluster\n${clusterToken}`);
}

/** A member's peer or client URL: http(s)://host:port. */
export function isMemberUrl(url: string): boolean {
  return /^https?:\/\/[^/\s]+\/?$/.test(url);
}

export class InitialClusterError extends Error {
  override readonly name = 'InitialClusterError';
}

/**
 * Parse `--initial-cluster`: `name=url,name=url2,other=url3` (a name may
 * appear more than once, one URL each, as with etcd).
 */
export function parseInitialCluster(text: string, clusterToken: string): MemberInfo[] {
  const byName = new Map<string, string[]>();
  for (const part of text.split(',').map((piece) => piece.trim()).filter((piece) => piece !== '')) {
    const equals = part.indexOf('=');
    if (equals <= 0 || equals === part.length - 1) throw new InitialClusterError(`--initial-cluster: ${JSON.stringify(part)} is not NAME=PEER_URL`);
    const name = part.slice(0, equals);
    const url = part.slice(equals + 1);
    if (!isMemberUrl(url)) throw new InitialClusterError(`--initial-cluster: ${JSON.stringify(url)} (member ${name}) is not an http:// or https:// URL with host:port`);
    byName.set(name, [...(byName.get(name) ?? []), url]);
  }
  if (byName.size === 0) throw new InitialClusterError('--initial-cluster names no members');
  const members = [...byName].map(([name, peerUrls]) => ({ id: memberIdOf(peerUrls, clusterToken), name, peerUrls, clientUrls: [] }));
  const ids = new Set(members.map((member) => member.id));
  if (ids.size !== members.length) throw new InitialClusterError('--initial-cluster lists the same peer URLs under two names');
  return members;
}

export function formatId(id: number): string {
  return id.toString(16);
}
