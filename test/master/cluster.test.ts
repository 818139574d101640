// Three real `mast master` processes on loopback, driven through etcd's v3
// gRPC API: replication, failover under write load, catch-up by log and by
// snapshot, watch resumption on another member, leases, membership changes,
// bad input, clean shutdown. Every wait is on a condition with a generous
// deadline (a noisy 2-core CI machine), never on a sleep.

import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { EtcdClient, type EtcdConnection } from '../../services/client/etcd.js';
import { missingWrites, startAckedWriter } from '../support/writer.js';
import { LocalCluster, waitFor } from '../../services/launcher/local-cluster.js';
import type * as etcd from '../../proto/gen/client/etcd/rpc.js';
import { PutRequest } from '../../proto/gen/client/etcd/rpc.js';

const text = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? []).toString();

async function statusOf(cluster: LocalCluster, name: string): Promise<etcd.StatusResponse> {
  const connection = cluster.connection(name);
  try {
    return await connection.status(2000);
  } finally {
    connection.close();
  }
}

/** Wait until every running member has applied the same index (and reports it). */
async function waitConverged(cluster: LocalCluster, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    'every running member to apply the same index',
    async () => {
      const applied = new Set<string>();
      for (const member of cluster.running()) applied.add((await statusOf(cluster, member.name)).raftAppliedIndex);
      return applied.size === 1 ? true : undefined;
    },
    timeoutMs,
  );
}

async function expectAllPresent(connection: EtcdConnection, prefix: string, acked: ReadonlyMap<string, string>): Promise<void> {
  expect(await missingWrites(connection, prefix, acked), `acknowledged writes missing on ${connection.endpoint}`).to.deep.equal([]);
}

describe('mast master: three processes', function () {
  this.timeout(180_000);
  let cluster: LocalCluster;
  let client: EtcdClient;

  before(async function () {
    cluster = await LocalCluster.start({
      size: 3,
      baseDir: mkdtempSync(join(tmpdir(), 'mast-cluster-test-')),
      // Small snapshots so that catching up by snapshot happens in a test-sized run.
      flags: ['--snapshot-count=200', '--snapshot-catchup-entries=20', '--watch-progress-notify-interval=300'],
    });
    client = new EtcdClient({ endpoints: cluster.endpoints, timeoutMs: 10_000 });
  });

  after(async function () {
    client?.close();
    await cluster?.destroy();
  });

  it('replicates a write made on one member to every member', async function () {
    const [first, second, third] = client.connections;
    const put = await first!.put('/basic/a', 'one');
    const read = await second!.get('/basic/a');
    expect(text(read.kvs[0]?.value)).to.equal('one');
    expect(read.kvs[0]?.modRevision).to.equal(put.header?.revision);
    await waitFor('the third member to apply it', async () => ((await third!.get('/basic/a', { serializable: true })).count === '1' ? true : undefined), 20_000);
    // Each member publishes its name and client URLs through the log once it sees a leader (as etcd's do): soon, not at once.
    const members = await waitFor('every member to publish its client URL', async () => {
      const list = await first!.memberList();
      return list.members.every((member) => member.clientURLs.length === 1) ? list : undefined;
    }, 20_000);
    expect(members.members.map((member) => member.name).sort()).to.deep.equal(['m1', 'm2', 'm3']);
  });

  it('serves txn, prefix range with limit and count, and delete with prevKv', async function () {
    const connection = client.connections[1]!;
    for (const key of ['a', 'b', 'c']) await connection.put(`/range/${key}`, key);
    const limited = await connection.range({ key: '/range/', rangeEnd: Buffer.from('/range0'), limit: '2' });
    expect(limited.kvs.map((kv) => text(kv.key))).to.deep.equal(['/range/a', '/range/b']);
    expect(limited.more).to.equal(true);
    expect(limited.count).to.equal('3');
    const txn = await connection.txn({
      compare: [{ key: Buffer.from('/range/a'), rangeEnd: Buffer.alloc(0), target: 3 /* VALUE */, result: 0 /* EQUAL */, targetUnion: { $case: 'value', value: Buffer.from('a') } }],
      success: [{ request: { $case: 'requestPut', value: PutRequest.fromPartial({ key: Buffer.from('/range/a'), value: Buffer.from('A') }) } }],
    });
    expect(txn.succeeded).to.equal(true);
    const deleted = await connection.deleteRange({ key: '/range/', rangeEnd: Buffer.from('/range0'), prevKv: true });
    expect(deleted.deleted).to.equal('3');
    expect(deleted.prevKvs.map((kv) => text(kv.value)).sort()).to.deep.equal(['A', 'b', 'c']);
  });

  it('keeps every acknowledged write when the leader is killed under write load, and the old leader catches up', async function () {
    const writer = startAckedWriter(client, '/failover');
    await waitFor('some writes', async () => (writer.acked.size >= 50 ? true : undefined), 30_000);
    const leader = await cluster.waitForLeader();
    await cluster.stopMember(leader.name, 'SIGKILL');
    const before = writer.acked.size;
    await waitFor('writes to resume after the leader died', async () => (writer.acked.size >= before + 50 ? true : undefined), 30_000);
    const acked = await writer.stop();
    cluster.startMember(leader.name);
    await cluster.waitForLeader();
    await waitConverged(cluster);
    for (const member of cluster.members) {
      const connection = cluster.connection(member.name);
      try {
        await expectAllPresent(connection, '/failover', acked);
      } finally {
        connection.close();
      }
    }
  });

  it('catches a member that missed many entries up by snapshot', async function () {
    const leader = await cluster.waitForLeader();
    const lagging = cluster.members.find((member) => member !== leader)!;
    await cluster.stopMember(lagging.name, 'SIGKILL');
    const survivors = new EtcdClient({ endpoints: cluster.running().map((member) => member.clientUrl), timeoutMs: 10_000 });
    const acked = new Map<string, string>();
    try {
      for (let i = 0; i < 600; i++) {
        const key = `/snapshot/${String(i).padStart(4, '0')}`;
        await survivors.withFailover((connection) => connection.put(key, `s${i}`));
        acked.set(key, `s${i}`);
      }
    } finally {
      survivors.close();
    }
    cluster.startMember(lagging.name);
    await waitConverged(cluster, 60_000);
    const connection = cluster.connection(lagging.name);
    try {
      await expectAllPresent(connection, '/snapshot', acked);
    } finally {
      connection.close();
    }
    // Whichever member led at the time sent it a snapshot (the log it needed was compacted away).
    const logs = cluster.members.filter((member) => member !== lagging).map((member) => readFileSync(member.logFile, 'utf8'));
    expect(logs.some((log) => /sent snapshot at index \d+ \(\d+ bytes\) to member/.test(log))).to.equal(true);
  });

  it('lets a watcher resume from its last revision on another member after its member dies', async function () {
    const watched = cluster.members.find((member) => member.process !== undefined)!;
    const other = cluster.members.find((member) => member.process !== undefined && member !== watched)!;
    const seen: Array<{ key: string; revision: string }> = [];
    const connection = cluster.connection(watched.name);
    const stream = connection.watchStream();
    stream.on('data', (response: etcd.WatchResponse) => {
      for (const event of response.events) seen.push({ key: text(event.kv?.key), revision: event.kv?.modRevision ?? '0' });
    });
    stream.on('error', () => {});
    const start = (await client.withFailover((c) => c.get('/watch/none'))).header!.revision;
    stream.write({ requestUnion: { $case: 'createRequest', value: { key: Buffer.from('/watch/'), rangeEnd: Buffer.from('/watch0'), startRevision: String(BigInt(start) + 1n), progressNotify: false, filters: [], prevKv: false, watchId: '0', fragment: false } } });
    const writes: string[] = [];
    for (let i = 0; i < 20; i++) {
      const response = await client.withFailover((c) => c.put(`/watch/${i}`, 'x'));
      writes.push(response.header!.revision);
    }
    await waitFor('the first 20 events', async () => (seen.length >= 20 ? true : undefined), 20_000);
    const last = seen[seen.length - 1]!.revision;
    await cluster.stopMember(watched.name, 'SIGKILL');
    stream.cancel();
    connection.close();
    // More writes while the watcher is away, then resume on another member.
    for (let i = 20; i < 40; i++) writes.push((await client.withFailover((c) => c.put(`/watch/${i}`, 'x'))).header!.revision);
    const resumed = cluster.connection(other.name);
    const second = resumed.watchStream();
    second.on('data', (response: etcd.WatchResponse) => {
      for (const event of response.events) seen.push({ key: text(event.kv?.key), revision: event.kv?.modRevision ?? '0' });
    });
    second.on('error', () => {});
    second.write({ requestUnion: { $case: 'createRequest', value: { key: Buffer.from('/watch/'), rangeEnd: Buffer.from('/watch0'), startRevision: String(BigInt(last) + 1n), progressNotify: false, filters: [], prevKv: false, watchId: '0', fragment: false } } });
    await waitFor('all 40 events', async () => (seen.length >= 40 ? true : undefined), 20_000);
    second.cancel();
    resumed.close();
    expect(seen.map((event) => event.revision)).to.deep.equal(writes);
    expect(seen.map((event) => event.key)).to.deep.equal(Array.from({ length: 40 }, (_, i) => `/watch/${i}`));
    cluster.startMember(watched.name);
    await cluster.waitForLeader();
  });

  it('sends progress notifications to watchers that asked, and answers progress requests', async function () {
    const connection = client.connections[0]!;
    const stream = connection.watchStream();
    const responses: etcd.WatchResponse[] = [];
    stream.on('data', (response: etcd.WatchResponse) => responses.push(response));
    stream.on('error', () => {});
    try {
      stream.write({ requestUnion: { $case: 'createRequest', value: { key: Buffer.from('/progress/'), rangeEnd: Buffer.from('/progress0'), startRevision: '0', progressNotify: true, filters: [], prevKv: false, watchId: '0', fragment: false } } });
      const isProgress = (response: etcd.WatchResponse): boolean => !response.created && !response.canceled && response.events.length === 0;
      await waitFor('a periodic progress notification', async () => (responses.some((response) => isProgress(response) && response.watchId === '0') ? true : undefined), 20_000);
      const written = await client.withFailover((c) => c.put('/elsewhere/x', 'y'));
      // This member may apply the write a moment after another acknowledged it: ask until it has.
      await waitFor(
        'the answer to a progress request, at or past the latest write',
        async () => {
          if (responses.some((response) => response.watchId === '-1' && BigInt(response.header!.revision) >= BigInt(written.header!.revision))) return true;
          stream.write({ requestUnion: { $case: 'progressRequest', value: {} } });
          return undefined;
        },
        20_000,
        100,
      );
    } finally {
      stream.cancel();
    }
  });

  it('expires a lease that is not kept alive (deleting its keys) and keeps one that is, across a leader kill', async function () {
    const lapsing = await client.withFailover((c) => c.leaseGrant(1));
    const kept = await client.withFailover((c) => c.leaseGrant(2));
    await client.withFailover((c) => c.put('/lease/lapsing', 'x', { lease: lapsing.ID }));
    await client.withFailover((c) => c.put('/lease/kept', 'y', { lease: kept.ID }));
    let keepAlive = true;
    const keeper = (async () => {
      while (keepAlive) {
        try {
          await new Promise<void>((resolve, reject) => {
            const stream = client.pick().keepAliveStream();
            stream.on('data', () => {
              stream.end();
              resolve();
            });
            stream.on('error', reject);
            stream.write({ ID: kept.ID });
          });
        } catch {
          // that member is down: the next round picks another
        }
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    })();
    await waitFor('the unrenewed lease to expire', async () => ((await client.withFailover((c) => c.get('/lease/lapsing'))).count === '0' ? true : undefined), 30_000);
    const expired = await client.withFailover((c) => c.leaseTimeToLive(lapsing.ID));
    expect(expired.TTL).to.equal('-1');
    const leader = await cluster.waitForLeader();
    await cluster.stopMember(leader.name, 'SIGKILL');
    await cluster.waitForLeader();
    // Well past the kept lease's TTL: a new leader extended it, the keeper renewed it.
    const waitUntil = Date.now() + 4000;
    await waitFor('4 s to pass', async () => (Date.now() > waitUntil ? true : undefined), 10_000, 200);
    const stillThere = await client.withFailover((c) => c.get('/lease/kept'));
    expect(stillThere.count).to.equal('1');
    keepAlive = false;
    await keeper;
    cluster.startMember(leader.name);
    await cluster.waitForLeader();
  });

  it('answers bad input with etcd status codes and keeps serving', async function () {
    const tooBig = Buffer.alloc(2 * 1024 * 1024, 'x');
    const failure = async (operation: () => Promise<unknown>): Promise<grpc.ServiceError> => {
      try {
        await operation();
      } catch (error) {
        return error as grpc.ServiceError;
      }
      throw new Error('expected the request to fail');
    };
    const large = await failure(() => client.withFailover((c) => c.put('/bad/large', Buffer.alloc(1_600_000, 'x'))));
    expect(large.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(large.details).to.contain('request is too large');
    const huge = await failure(() => client.withFailover((c) => c.put('/bad/huge', tooBig)));
    expect(huge.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
    const emptyKey = await failure(() => client.withFailover((c) => c.get('')));
    expect(emptyKey.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(emptyKey.details).to.contain('key is not provided');
    const unknownLease = await failure(() => client.withFailover((c) => c.leaseRevoke('12345')));
    expect(unknownLease.code).to.equal(grpc.status.NOT_FOUND);
    const put = await client.withFailover((c) => c.put('/bad/compacted', '1'));
    await client.withFailover((c) => c.put('/bad/compacted', '2'));
    await client.withFailover((c) => c.compact(String(BigInt(put.header!.revision) + 1n)));
    const compacted = await failure(() => client.withFailover((c) => c.get('/bad/compacted', { revision: put.header!.revision })));
    expect(compacted.code).to.equal(grpc.status.OUT_OF_RANGE);
    expect(compacted.details).to.contain('required revision has been compacted');
    const future = await failure(() => client.withFailover((c) => c.get('/bad/compacted', { revision: '99999999' })));
    expect(future.code).to.equal(grpc.status.OUT_OF_RANGE);
    // Still serving.
    expect((await client.withFailover((c) => c.put('/bad/after', 'ok'))).header?.revision).to.be.a('string');
    expect(cluster.running().length).to.be.greaterThan(0);
  });

  it('adds a learner, promotes it, and removes a member', async function () {
    const slot = await cluster.addSlot();
    const added = await client.withFailover((c) => c.memberAdd([slot.peerUrl], true));
    expect(added.member?.isLearner).to.equal(true);
    const everyone = cluster.members.map((member) => `${member.name}=${member.peerUrl}`).join(',');
    cluster.startMember(slot.name, 'existing', everyone);
    const learner = cluster.connection(slot.name);
    try {
      await waitFor('the learner to catch up', async () => ((await learner.get('/basic/a', { serializable: true })).count === '1' ? true : undefined), 60_000);
      await waitFor(
        'the promotion to be accepted',
        async () => {
          try {
            await client.withFailover((c) => c.memberPromote(added.member!.ID));
            return true;
          } catch (error) {
            if ((error as grpc.ServiceError).code === grpc.status.FAILED_PRECONDITION) return undefined;
            throw error;
          }
        },
        60_000,
        200,
      );
      // Member lists are served from each member's applied state (not
      // linearizable, as in etcd): every member shows the promotion once it
      // has applied it, the promoted member included.
      for (const member of cluster.members) {
        const connection = cluster.connection(member.name);
        try {
          await waitFor(`${member.name} to list the promoted member as a voter`, async () => ((await connection.memberList()).members.find((listed) => listed.ID === added.member!.ID)?.isLearner === false ? true : undefined), 10_000);
        } finally {
          connection.close();
        }
      }
      await waitFor('the promoted member to see itself as a voter', async () => ((await learner.status()).isLearner ? undefined : true), 10_000);
    } finally {
      learner.close();
    }
    const removed = await client.withFailover((c) => c.memberRemove(added.member!.ID));
    expect(removed.members.map((member) => member.ID)).to.not.include(added.member!.ID);
    await cluster.stopMember(slot.name, 'SIGKILL');
    cluster.members.pop();
    // The remaining three still commit.
    expect((await client.withFailover((c) => c.put('/membership/after', 'ok'))).header?.revision).to.be.a('string');
  });

  it('shuts down cleanly on SIGTERM, a leader handing over leadership first, and a restarted member rejoins', async function () {
    const leader = await cluster.waitForLeader();
    const started = Date.now();
    const code = await cluster.stopMember(leader.name, 'SIGTERM');
    const took = Date.now() - started;
    expect(code).to.equal(0);
    expect(took).to.be.below(5000); // the process forces itself out after 0.9 s; 5 s allows for a loaded machine
    expect(readFileSync(leader.logFile, 'utf8')).to.match(/handed leadership to member [0-9a-f]+ before stopping/);
    const next = await cluster.waitForLeader();
    expect(next.name).to.not.equal(leader.name);
    cluster.startMember(leader.name);
    await cluster.waitForLeader();
    await waitConverged(cluster);
  });

  it('refuses to start a member whose snapshot fails its checksum, naming the file', async function () {
    const member = cluster.members.find((candidate) => candidate.process !== undefined)!;
    await cluster.stopMember(member.name, 'SIGTERM');
    const snapDir = join(member.dataDir, 'snap');
    const snapshots = readdirSync(snapDir).filter((name) => name.endsWith('.snap')).sort();
    expect(snapshots.length, 'the member took a snapshot').to.be.greaterThan(0);
    const file = join(snapDir, snapshots[snapshots.length - 1]!);
    const bytes = readFileSync(file);
    const middle = bytes.length >> 1;
    bytes.writeUInt8(bytes.readUInt8(middle) ^ 0xff, middle);
    writeFileSync(file, bytes);
    const started = cluster.startMember(member.name);
    const code = await new Promise<number | null>((resolve) => started.process!.once('exit', resolve));
    expect(code).to.equal(1);
    await waitFor('the log to name the file', async () => (readFileSync(member.logFile, 'utf8').includes(`${file}: the snapshot at index`) ? true : undefined), 10_000);
    expect(readFileSync(member.logFile, 'utf8')).to.contain('fails its checksum');
  });
});
