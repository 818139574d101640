// etcd's v3 gRPC API (the subset mast implements) over a master's replicated store.
import type * as grpc from '@grpc/grpc-js';
import * as etcd from '../../proto/gen/etcd/rpc.js';
import type { ReplicatedStore } from '../store/index.js';
import { clusterService, maintenanceService, type ClusterServiceOptions } from './cluster-service.js';
import { kvService } from './kv-service.js';
import { leaseService, type LeaseServiceOptions } from './lease-service.js';
import { watchService, type WatchServiceOptions } from './watch-service.js';

export { ApiError, toServiceError, unary } from './errors.js';
export { ETCD_API_VERSION } from './cluster-service.js';

export type EtcdApiOptions = ClusterServiceOptions & LeaseServiceOptions & WatchServiceOptions;

/** Register KV, Watch, Lease, Cluster and Maintenance on a gRPC server. */
export function addEtcdServices(server: grpc.Server, store: ReplicatedStore, options: EtcdApiOptions): void {
  server.addService(etcd.KVService, kvService(store));
  server.addService(etcd.WatchService, watchService(store, options));
  server.addService(etcd.LeaseService, leaseService(store, options));
  server.addService(etcd.ClusterService, clusterService(store, options));
  server.addService(etcd.MaintenanceService, maintenanceService(store, options));
}
