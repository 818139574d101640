import { expect } from 'chai';
import { ClassicLevel } from 'classic-level';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Entry, Snapshot } from '../../raft/core/index.js';
import { LevelRaftStorage, StorageCorruption } from '../../raft/storage/index.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const normal = (term: number, index: number, text = `v${index}`): Entry => ({ kind: 'normal', term, index, data: bytes(text) });

describe('raft/storage on classic-level', () => {
  let directory: string;
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'mast-storage-'));
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  async function reopen(): Promise<Awaited<ReturnType<typeof LevelRaftStorage.open>>> {
    return LevelRaftStorage.open(directory);
  }

  it('starts empty and round-trips entries, conf changes and the hard state', async () => {
    const first = await reopen();
    expect(first.state.entries).to.deep.equal([]);
    expect(first.state.hardState).to.deep.equal({ term: 0, vote: 0, commit: 0 });
    const conf: Entry = { kind: 'conf-change', term: 1, index: 3, change: { type: 'add-learner', nodeId: 4 } };
    await first.storage.persist({ hardState: { term: 1, vote: 2, commit: 2 }, entries: [normal(1, 1), normal(1, 2), conf] }, true);
    await first.storage.close();
    const second = await reopen();
    expect(second.state.hardState).to.deep.equal({ term: 1, vote: 2, commit: 2 });
    expect(second.state.entries).to.deep.equal([normal(1, 1), normal(1, 2), conf]);
    await second.storage.close();
  });

  it('replaces a conflicting suffix, deleting stored entries past the new end', async () => {
    const { storage } = await reopen();
    await storage.persist({ entries: [1, 2, 3, 4].map((i) => normal(1, i)) }, true);
    await storage.persist({ entries: [normal(2, 3, 'new3')] }, true);
    await storage.close();
    const { state, storage: again } = await reopen();
    expect(state.entries.map((e) => `${e.term}/${e.index}`)).to.deep.equal(['1/1', '1/2', '2/3']);
    await again.close();
  });

  it('keeps a snapshot in a checksummed file and compacts the log before it', async () => {
    const { storage } = await reopen();
    await storage.persist({ entries: [1, 2, 3, 4, 5].map((i) => normal(1, i)) }, true);
    const snapshot: Snapshot = { meta: { index: 3, term: 1, conf: { voters: [1, 2, 3], learners: [4] } }, data: bytes('state@3') };
    await storage.saveSnapshot(snapshot);
    await storage.compact(3);
    await storage.close();
    const { state, storage: again } = await reopen();
    expect(state.snapshot).to.deep.equal(snapshot);
    expect(state.entries.map((e) => e.index)).to.deep.equal([4, 5]);
    expect(await readdir(join(directory, 'snap'))).to.have.length(1);
    await again.close();
  });

  it('replaces the whole log with a snapshot received from the leader', async () => {
    const { storage } = await reopen();
    await storage.persist({ entries: [1, 2, 3].map((i) => normal(1, i)) }, true);
    const snapshot: Snapshot = { meta: { index: 10, term: 3, conf: { voters: [1, 2, 3], learners: [] } }, data: bytes('state@10') };
    await storage.persist({ snapshot, entries: [normal(3, 11)], hardState: { term: 3, vote: 0, commit: 10 } }, true);
    await storage.close();
    const { state, storage: again } = await reopen();
    expect(state.snapshot?.meta.index).to.equal(10);
    expect(state.entries.map((e) => e.index)).to.deep.equal([11]);
    await again.close();
  });

  it('truncates a torn tail and reports the repair', async () => {
    const { storage } = await reopen();
    await storage.persist({ entries: [1, 2, 3].map((i) => normal(1, i)), hardState: { term: 1, vote: 1, commit: 2 } }, true);
    await storage.close();
    await corruptEntry(3);
    const { state, storage: again } = await reopen();
    expect(state.entries.map((e) => e.index)).to.deep.equal([1, 2]);
    expect(state.repairs.join('\n')).to.match(/torn log tail at entry 3/);
    await again.close();
  });

  it('refuses to start on a corrupt entry in the middle of the log, naming the file and index', async () => {
    const { storage } = await reopen();
    await storage.persist({ entries: [1, 2, 3].map((i) => normal(1, i)) }, true);
    await storage.close();
    await corruptEntry(2);
    try {
      await reopen();
      expect.fail('a corrupt log opened');
    } catch (error) {
      expect(error).to.be.instanceOf(StorageCorruption);
      const corruption = error as StorageCorruption;
      expect(corruption.index).to.equal(2);
      expect(corruption.message).to.contain(join(directory, 'raft')).and.to.contain('entry 2');
    }
  });

  it('refuses to start when the snapshot file fails its checksum', async () => {
    const { storage } = await reopen();
    await storage.persist({ entries: [normal(1, 1)] }, true);
    await storage.saveSnapshot({ meta: { index: 1, term: 1, conf: { voters: [1], learners: [] } }, data: bytes('good') });
    await storage.close();
    const [name] = await readdir(join(directory, 'snap'));
    await writeFile(join(directory, 'snap', name!), 'evil');
    try {
      await reopen();
      expect.fail('a corrupt snapshot opened');
    } catch (error) {
      expect(error).to.be.instanceOf(StorageCorruption);
      expect((error as StorageCorruption).message).to.match(/snapshot at index 1 fails its checksum/);
    }
  });

  async function corruptEntry(index: number): Promise<void> {
    const db = new ClassicLevel<string, Uint8Array>(join(directory, 'raft'), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    const key = 'e' + index.toString(16).padStart(16, '0');
    const value = (await db.get(key))!;
    const flipped = value.slice();
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0xff;
    await db.put(key, flipped);
    await db.close();
  }
});
