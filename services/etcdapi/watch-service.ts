// etcdserverpb.Watch: one bidirectional stream carries many watchers. Each
// watcher is first confirmed (created), then gets its history from the start
// revision and every later change, in revision order, from this member's
// store (every member applies the same log, so a client can resume on any
// member from the last revision it saw). A start revision that was compacted
// away cancels the watcher with the compact revision, so the client re-lists.

import type * as grpc from '@grpc/grpc-js';
import * as etcd from '../../proto/gen/etcd/rpc.js';
import type { WatchBatch } from '../../raft/kv/index.js';
import { eventToWire, type ReplicatedStore } from '../store/index.js';

export interface WatchServiceOptions {
  /** How often watchers that asked for progress notifications get one (etcd: 10 minutes). */
  readonly progressNotifyIntervalMs: number;
  /**
   * Responses a stream may have queued for a client that does not read them;
   * beyond it the watcher is cancelled (saying so), so memory stays bounded.
   */
  readonly maxQueuedResponses?: number;
}

const COMPACTED = 'etcdserver: mvcc: required revision has been compacted';

export function watchService(store: ReplicatedStore, options: WatchServiceOptions): etcd.WatchServer {
  const maxQueued = options.maxQueuedResponses ?? 10_000;
  return {
    watch: (call: grpc.ServerDuplexStream<etcd.WatchRequest, etcd.WatchResponse>) => {
      const watchers = new Map<number, { cancel: () => void; progress: boolean }>();
      let nextWatchId = 0;
      let closed = false;
      const send = (response: etcd.WatchResponse): void => {
        if (!closed) call.write(response);
      };
      const base = (watchId: number): etcd.WatchResponse => ({
        header: store.header(),
        watchId,
        created: false,
        canceled: false,
        compactRevision: 0,
        cancelReason: '',
        fragment: false,
        events: [],
      });
      const progressTimer = setInterval(() => {
        for (const [watchId, watcher] of watchers) if (watcher.progress) send(base(watchId));
      }, options.progressNotifyIntervalMs);

      const create = (request: etcd.WatchCreateRequest): void => {
        const watchId = request.watchId > 0 ? request.watchId : nextWatchId++;
        if (watchers.has(watchId)) {
          send({ ...base(watchId), created: true, canceled: true, cancelReason: `etcdserver: duplicate watch ID ${watchId} on this stream` });
          return;
        }
        if (request.key.byteLength === 0) {
          send({ ...base(watchId), created: true, canceled: true, cancelReason: 'etcdserver: key is not provided' });
          return;
        }
        send({ ...base(watchId), created: true });
        /** The revision the client has been sent everything up to. */
        let delivered = request.startRevision > 0 ? request.startRevision - 1 : store.kv.revision;
        let active = true;
        const deliver = (batch: WatchBatch): void => {
          if (!active) return;
          if (batch.compactRevision !== undefined) {
            active = false;
            watchers.delete(watchId);
            send({ ...base(watchId), canceled: true, compactRevision: batch.compactRevision, cancelReason: COMPACTED });
            return;
          }
          if (call.writableLength >= maxQueued) {
            active = false;
            stopWatching();
            watchers.delete(watchId);
            send({
              ...base(watchId),
              canceled: true,
              cancelReason: `etcdserver: the client reads too slowly (${call.writableLength} responses unsent); watch again from revision ${delivered + 1}`,
            });
            return;
          }
          delivered = batch.revision;
          send({ ...base(watchId), header: store.header(batch.revision), events: batch.events.map(eventToWire) });
        };
        let stopWatching = (): void => {};
        const started = store.watchHub.watch(
          {
            key: request.key,
            rangeEnd: request.rangeEnd.byteLength === 0 ? undefined : request.rangeEnd,
            startRevision: request.startRevision,
            prevKv: request.prevKv,
            noPut: request.filters.includes(etcd.WatchCreateRequest_FilterType.NOPUT),
            noDelete: request.filters.includes(etcd.WatchCreateRequest_FilterType.NODELETE),
          },
          deliver,
        );
        stopWatching = started.kind === 'created' ? started.cancel : () => {};
        if (started.kind === 'compacted') {
          send({ ...base(watchId), canceled: true, compactRevision: started.compactRevision, cancelReason: `${COMPACTED} (${started.message})` });
          return;
        }
        if (!active) {
          started.cancel(); // cancelled already, while replaying its history
          return;
        }
        watchers.set(watchId, { cancel: started.cancel, progress: request.progressNotify });
      };

      call.on('data', (request: etcd.WatchRequest) => {
        const union = request.requestUnion;
        switch (union?.$case) {
          case 'createRequest':
            create(union.value);
            return;
          case 'cancelRequest': {
            const watcher = watchers.get(union.value.watchId);
            watcher?.cancel();
            watchers.delete(union.value.watchId);
            send({ ...base(union.value.watchId), canceled: true });
            return;
          }
          case 'progressRequest':
            // A progress notification for the whole stream (watch id -1, as etcd does).
            send(base(-1));
            return;
          case undefined:
            return;
        }
      });
      const close = (): void => {
        if (closed) return;
        closed = true;
        clearInterval(progressTimer);
        for (const watcher of watchers.values()) watcher.cancel();
        watchers.clear();
      };
      call.on('end', () => {
        close();
        call.end();
      });
      call.on('error', close);
      call.on('cancelled', close);
    },
  };
}
