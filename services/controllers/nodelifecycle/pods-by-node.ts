// An index of the pod informer's cache by spec.nodeName (client-go's
// indexer on "spec.nodeName"), kept by the pod event handlers: which pods
// a node's change concerns, without a scan of every pod.

import { type InformerView } from '../../client/shared-informers.js';
import type { Pod } from '../../../proto/gen/resources/v1/core.js';
import { keyOf } from '../../client/informer.js';
import type { KubeObject } from '../../client/resources.js';

export class PodsByNode {
  private readonly byNode = new Map<string, Set<string>>();
  private readonly nodeOf = new Map<string, string>();

  /** Keep the index with the informer (call before its start, or it tells of the cached pods at once). */
  follow(pods: InformerView<KubeObject>): void {
    pods.onAdd((pod) => this.set(pod as Pod));
    pods.onUpdate((_old, pod) => this.set(pod as Pod));
    pods.onDelete((pod) => this.remove(pod as Pod));
  }

  /** The keys ("namespace/name") of the pods bound to the node. */
  podKeys(node: string): string[] {
    return [...(this.byNode.get(node) ?? [])];
  }

  private set(pod: Pod): void {
    const key = keyOf(pod as KubeObject);
    const node = pod.spec?.nodeName ?? '';
    if (this.nodeOf.get(key) === node) return;
    this.remove(pod);
    if (node === '') return;
    this.nodeOf.set(key, node);
    const keys = this.byNode.get(node) ?? new Set<string>();
    keys.add(key);
    this.byNode.set(node, keys);
  }

  private remove(pod: Pod): void {
    const key = keyOf(pod as KubeObject);
    const node = this.nodeOf.get(key);
    if (node === undefined) return;
    this.nodeOf.delete(key);
    const keys = this.byNode.get(node);
    keys?.delete(key);
    if (keys?.size === 0) this.byNode.delete(node);
  }
}
