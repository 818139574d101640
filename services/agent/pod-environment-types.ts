// The contract between the pod worker and the config builders
// (pod-environment.ts implements it): what the worker asks of the node to run
// a pod — volumes on disk, and the CRI configs of its sandbox and containers.

import type { Pod, Container } from '../../proto/gen/resources/v1/core.js';
import type { PodSandboxConfig, ContainerConfig } from '../../proto/gen/cri/v1/api.js';

/** A pod cannot start yet: missing configMap/secret/claim, bad subPath… (kubelet reasons: CreateContainerConfigError, FailedMount…). */
export class PodConfigError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
  override readonly name = 'PodConfigError';
}

export interface PodEnvironment {
  /** Materialise the pod's volumes on the node (idempotent). Throws PodConfigError. */
  prepareVolumes(pod: Pod): Promise<void>;
  /** RunPodSandbox's config. Labels include io.kubernetes.pod.name, io.kubernetes.pod.namespace, io.kubernetes.pod.uid; metadata {name, namespace, uid, attempt}. */
  sandboxConfig(pod: Pod, attempt: number): PodSandboxConfig;
  /** CreateContainer's config for one attempt (env resolved now: Service env vars, valueFrom, podIP). Labels include io.kubernetes.container.name, io.kubernetes.pod.{name,namespace,uid}; annotations io.kubernetes.container.hash (hash of the container spec), io.kubernetes.container.restartCount. Throws PodConfigError. */
  containerConfig(pod: Pod, container: Container, options: { readonly attempt: number; readonly podIP: string; readonly init: boolean }): Promise<ContainerConfig>;
  /** Remove what prepareVolumes made for the pod (not hostPath or PV contents). */
  cleanup(podUid: string): Promise<void>;
}
