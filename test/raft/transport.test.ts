// The gRPC transport between masters, in one process on loopback: batches
// arrive in order, a snapshot larger than a chunk arrives whole (checksum
// verified), and a peer that is down costs a bounded queue and an
// "unreachable" report, never unbounded memory.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import type { Message, NodeId } from '../../raft/core/index.js';
import { GrpcTransport, raftTransportHandlers, raftWire, type MessageSink } from '../../raft/transport/index.js';
import { freePort, waitFor } from '../../services/launcher/local-cluster.js';

class Sink implements MessageSink {
  readonly received: Message[] = [];
  readonly unreachable: NodeId[] = [];
  readonly snapshots: Array<[NodeId, boolean]> = [];
  step(message: Message): void {
    this.received.push(message);
  }
  reportUnreachable(peer: NodeId): void {
    this.unreachable.push(peer);
  }
  reportSnapshot(peer: NodeId, ok: boolean): void {
    this.snapshots.push([peer, ok]);
  }
}

async function serve(self: NodeId, sink: MessageSink): Promise<{ server: grpc.Server; url: string }> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  server.addService(raftWire.RaftTransportService, raftTransportHandlers(sink, { self }));
  const port = await freePort();
  await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error) => (error === null ? resolve() : reject(error))));
  return { server, url: `http://127.0.0.1:${port}` };
}

const heartbeat = (index: number): Message => ({ from: 1, to: 2, term: 3, kind: 'heartbeat', commit: index, context: '' });

describe('raft gRPC transport', function () {
  this.timeout(30_000);
  const cleanup: Array<() => void> = [];
  afterEach(function () {
    for (const step of cleanup.splice(0)) step();
  });

  it('delivers messages in order, each send as one batch', async function () {
    const receiver = new Sink();
    const { server, url } = await serve(2, receiver);
    const sender = new Sink();
    const transport = new GrpcTransport({ self: 1, credentials: grpc.credentials.createInsecure() }, sender);
    cleanup.push(() => transport.close(), () => server.forceShutdown());
    transport.setPeer(2, url);
    for (let i = 1; i <= 500; i++) transport.send([heartbeat(i)]);
    await waitFor('500 messages', async () => (receiver.received.length >= 500 ? true : undefined), 20_000);
    expect(receiver.received.map((message) => (message.kind === 'heartbeat' ? message.commit : -1))).to.deep.equal(Array.from({ length: 500 }, (_, i) => i + 1));
  });

  it('streams a snapshot larger than one chunk and reports the outcome', async function () {
    const receiver = new Sink();
    const { server, url } = await serve(2, receiver);
    const sender = new Sink();
    const transport = new GrpcTransport({ self: 1, credentials: grpc.credentials.createInsecure(), snapshotChunkBytes: 64 * 1024 }, sender);
    cleanup.push(() => transport.close(), () => server.forceShutdown());
    transport.setPeer(2, url);
    const data = new Uint8Array(1_000_003).map((_, i) => (i * 7) % 251);
    transport.send([{ from: 1, to: 2, term: 4, kind: 'snapshot', snapshot: { meta: { index: 99, term: 4, conf: { voters: [1, 2], learners: [] } }, data } }]);
    await waitFor('the snapshot outcome', async () => (sender.snapshots.length > 0 ? true : undefined), 20_000);
    expect(sender.snapshots).to.deep.equal([[2, true]]);
    const delivered = receiver.received[0]!;
    expect(delivered.kind).to.equal('snapshot');
    if (delivered.kind !== 'snapshot') return;
    expect(delivered.snapshot.meta).to.deep.equal({ index: 99, term: 4, conf: { voters: [1, 2], learners: [] } });
    expect(Buffer.compare(Buffer.from(delivered.snapshot.data), Buffer.from(data))).to.equal(0);
  });

  it('drops messages for a peer that is down and reports it unreachable, with a bounded queue', async function () {
    const sender = new Sink();
    const transport = new GrpcTransport({ self: 1, credentials: grpc.credentials.createInsecure(), maxQueuedMessages: 16 }, sender);
    cleanup.push(() => transport.close());
    transport.setPeer(2, `http://127.0.0.1:${await freePort()}`); // nothing listens there
    await waitFor(
      'the peer to be reported unreachable',
      async () => {
        for (let i = 0; i < 100; i++) transport.send([heartbeat(i)]);
        return sender.unreachable.length > 0 ? true : undefined;
      },
      20_000,
      50,
    );
    expect(sender.unreachable.every((peer) => peer === 2)).to.equal(true);
    transport.send([{ from: 1, to: 2, term: 1, kind: 'snapshot', snapshot: { meta: { index: 1, term: 1, conf: { voters: [1], learners: [] } }, data: new Uint8Array(10) } }]);
    await waitFor('the failed snapshot report', async () => (sender.snapshots.length > 0 ? true : undefined), 20_000);
    expect(sender.snapshots[0]).to.deep.equal([2, false]);
  });
});
