// Backup and restore on real master processes: `mastctl snapshot save` from a
// 3-master cluster, `mast snapshot restore` (refusing a corrupt copy) into
// the data dirs of a new 3-master cluster on new ports, which then serves the
// saved keys at their saved revisions and takes new writes.

import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResourceClient } from '../../services/client/resources.js';
import { runCtl } from '../../services/ctl/mastctl.js';
import { LocalCluster, MAST_BINARY, waitFor, waitForNamespace } from '../../services/launcher/local-cluster.js';

const RESTORED_TOKEN = 'mast-restored';

function mast(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAST_BINARY, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function ctl(args: readonly string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await runCtl(args, { out: (text) => void lines.push(text), readStdin: () => '', env: {}, now: () => new Date() });
  return { code, lines };
}

describe('mast: snapshot save and restore', function () {
  this.timeout(180_000);
  const dirs: string[] = [];
  const clusters: LocalCluster[] = [];
  const clients: ResourceClient[] = [];

  after(async function () {
    for (const client of clients) client.close();
    for (const cluster of clusters) await cluster.destroy();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('saves a verified snapshot, refuses a corrupt one, and restores it into a new cluster', async function () {
    const backupDir = mkdtempSync(join(tmpdir(), 'mast-snapshot-files-'));
    dirs.push(backupDir);
    const original = await LocalCluster.start({ size: 3, baseDir: mkdtempSync(join(tmpdir(), 'mast-snapshot-src-')) });
    clusters.push(original);
    const client = new ResourceClient({ endpoints: original.endpoints });
    clients.push(client);
    await waitForNamespace(client, 'default');

    // Some keys (one overwritten, one deleted) and a resource object.
    const connection = original.connection('m2');
    await connection.put('/backup/a', 'one');
    await connection.put('/backup/b', 'two');
    await connection.put('/backup/a', 'three');
    await connection.put('/backup/gone', 'x');
    await connection.deleteRange({ key: '/backup/gone' });
    const configMap = await client.create('ConfigMap', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'saved', namespace: 'default' }, data: { color: 'blue' } });
    const before = await connection.get('/backup/', { rangeEnd: Buffer.from('/backup0') });
    connection.close();
    expect(before.kvs.map((kv) => Buffer.from(kv.key).toString())).to.deep.equal(['/backup/a', '/backup/b']);

    // mastctl snapshot save, from a follower or the leader alike.
    const file = join(backupDir, 'backup.snap');
    const saved = await ctl(['snapshot', 'save', file, '--server', original.members[0]!.clientUrl]);
    expect(saved.code, saved.lines.join('\n')).to.equal(0);
    const match = /^Snapshot saved at (.+) \(revision (\d+), (\d+) bytes\)$/.exec(saved.lines[0] ?? '');
    expect(match, saved.lines.join('\n')).to.not.equal(null);
    expect(match![1]).to.equal(file);
    const savedRevision = Number(match![2]);
    expect(savedRevision).to.be.at.least(Number(before.header!.revision));
    const bytes = readFileSync(file);
    expect(bytes.byteLength).to.equal(Number(match![3]));
    expect(statSync(file).size).to.equal(bytes.byteLength);
    expect(bytes.byteLength % 512).to.equal(32); // whole 512-byte pages, then the sha256, where etcdctl looks for it
    expect(readdirSync(backupDir)).to.deep.equal(['backup.snap']); // no .part left behind
    const data = bytes.subarray(0, bytes.byteLength - 32);
    expect(createHash('sha256').update(data).digest().equals(bytes.subarray(bytes.byteLength - 32))).to.equal(true);

    const status = await mast(['snapshot', 'status', file]);
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.contain(`revision ${savedRevision}`);

    const usage = await ctl(['snapshot', 'save', '--server', original.members[0]!.clientUrl]);
    expect(usage.code).to.equal(1);
    expect(usage.lines[0]).to.equal('error: usage: mastctl snapshot save FILE');
    await original.destroy();

    const restored = await LocalCluster.create({ size: 3, baseDir: mkdtempSync(join(tmpdir(), 'mast-snapshot-dst-')), flags: [`--initial-cluster-token=${RESTORED_TOKEN}`] });
    clusters.push(restored);
    const restoreArgs = (name: string, snapshot: string): string[] => {
      const member = restored.member(name);
      return [
        'snapshot', 'restore', snapshot,
        '--data-dir', member.dataDir,
        '--name', name,
        '--initial-cluster', restored.initialCluster,
        '--initial-advertise-peer-urls', member.peerUrl,
        `--initial-cluster-token=${RESTORED_TOKEN}`,
      ];
    };

    // A corrupt copy (one byte flipped in the data) is refused before anything is written.
    const corrupt = join(backupDir, 'corrupt.snap');
    const damaged = Buffer.from(bytes);
    const flipped = Math.floor(damaged.byteLength / 2);
    damaged[flipped] = damaged[flipped]! ^ 0xff;
    writeFileSync(corrupt, damaged);
    const refused = await mast(restoreArgs('m1', corrupt));
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.match(/snapshot hash mismatch.*corrupt or truncated; refusing to restore it/);
    expect(existsSync(restored.member('m1').dataDir)).to.equal(false);
    const truncated = join(backupDir, 'truncated.snap');
    writeFileSync(truncated, bytes.subarray(0, bytes.byteLength - 100));
    expect((await mast(restoreArgs('m1', truncated))).stderr).to.match(/snapshot hash mismatch/);

    // Restore each member of the new cluster, then start them on the restored data dirs.
    for (const member of restored.members) {
      const result = await mast(restoreArgs(member.name, file));
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.contain(`revision ${savedRevision}`);
    }
    const again = await mast(restoreArgs('m1', file));
    expect(again.code).to.equal(1);
    expect(again.stderr).to.match(/exists and is not empty/);
    for (const member of restored.members) restored.startMember(member.name, 'existing');
    await restored.waitForLeader(60_000);

    const reader = restored.connection('m3');
    try {
      const after = await waitFor('the restored keys', async () => reader.get('/backup/', { rangeEnd: Buffer.from('/backup0') }), 30_000);
      expect(after.kvs.map((kv) => [Buffer.from(kv.key).toString(), Buffer.from(kv.value).toString(), kv.modRevision, kv.createRevision, kv.version])).to.deep.equal(
        before.kvs.map((kv) => [Buffer.from(kv.key).toString(), Buffer.from(kv.value).toString(), kv.modRevision, kv.createRevision, kv.version]),
      );
      expect(Number(after.header!.revision)).to.be.at.least(savedRevision);

      // The new membership: three new members, none of the old ones.
      const members = await reader.memberList();
      expect(members.members.map((member) => member.peerURLs[0]).sort()).to.deep.equal(restored.members.map((member) => member.peerUrl).sort());

      // The resource object, through the resource API, at its saved resourceVersion.
      const restoredClient = new ResourceClient({ endpoints: restored.endpoints });
      clients.push(restoredClient);
      const object = await restoredClient.get('ConfigMap', 'default', 'saved');
      expect(object.metadata?.resourceVersion).to.equal(configMap.metadata?.resourceVersion);
      expect((object as { data?: Record<string, string> }).data).to.deep.equal({ color: 'blue' });

      // New writes go on from the saved revision.
      const written = await reader.put('/backup/new', 'after-restore');
      expect(Number(written.header!.revision)).to.be.greaterThan(savedRevision);
      const other = restored.connection('m1');
      try {
        const read = await waitFor('the new key on another member', async () => ((await other.get('/backup/new')).kvs[0] ?? undefined), 10_000);
        expect(Buffer.from(read.value).toString()).to.equal('after-restore');
      } finally {
        other.close();
      }
    } finally {
      reader.close();
    }
  });
});
