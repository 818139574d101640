// etcdctl (Debian's etcd-client, ETCDCTL_API=3), unchanged, against a
// 3-master mast cluster: put, get (prefix, rev), del, txn, watch, lease
// grant/keep-alive/timetolive/revoke, member list/add/remove, endpoint
// status/health. `.ci/run` installs etcd-client; elsewhere the suite is
// skipped with a message saying how to get it.

import { expect } from 'chai';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster, waitFor } from '../../services/launcher/local-cluster.js';

function etcdctlPath(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v etcdctl'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

describe('etcdctl against a 3-master mast cluster', function () {
  this.timeout(120_000);
  let cluster: LocalCluster;
  let endpoints: string;
  const binary = etcdctlPath();

  /** stdout (and stderr too with `withStderr`: `endpoint health` reports there). */
  const etcdctl = (args: readonly string[], input?: string, withStderr = false): Promise<string> =>
    new Promise((resolve, reject) => {
      const child = execFile(
        binary!,
        [`--endpoints=${endpoints}`, '--command-timeout=10s', ...args],
        { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 30_000 },
        (error, stdout, stderr) => (error === null ? resolve(withStderr ? stdout + stderr : stdout) : reject(new Error(`etcdctl ${args.join(' ')} failed: ${stderr || error.message}`))),
      );
      if (input !== undefined) child.stdin?.end(input);
    });

  before(async function () {
    if (binary === undefined) {
      if (process.env.MAST_REQUIRE_ETCDCTL === '1') throw new Error('etcdctl is required here (MAST_REQUIRE_ETCDCTL=1) but not installed: apt-get install etcd-client');
      console.log('    (etcdctl not installed: `apt-get install etcd-client` to run this suite; .ci/run does)');
      this.skip();
    }
    cluster = await LocalCluster.start({ size: 3, baseDir: mkdtempSync(join(tmpdir(), 'mast-etcdctl-test-')) });
    endpoints = cluster.endpoints.join(',');
  });

  after(async function () {
    await cluster?.destroy();
  });

  it('put, get, get --prefix, get --rev and del', async function () {
    expect(await etcdctl(['put', '/ctl/a', 'one'])).to.equal('OK\n');
    expect(await etcdctl(['put', '/ctl/b', 'two'])).to.equal('OK\n');
    expect(await etcdctl(['get', '/ctl/a'])).to.equal('/ctl/a\none\n');
    expect(await etcdctl(['get', '--prefix', '/ctl/'])).to.equal('/ctl/a\none\n/ctl/b\ntwo\n');
    const first = JSON.parse(await etcdctl(['get', '/ctl/a', '-w', 'json'])) as { kvs: Array<{ mod_revision: number }> };
    const revision = first.kvs[0]!.mod_revision;
    expect(await etcdctl(['put', '/ctl/a', 'changed'])).to.equal('OK\n');
    expect(await etcdctl(['get', '/ctl/a', `--rev=${revision}`])).to.equal('/ctl/a\none\n');
    expect(await etcdctl(['get', '/ctl/a', '--print-value-only'])).to.equal('changed\n');
    expect(await etcdctl(['del', '--prefix', '/ctl/'])).to.equal('2\n');
    expect(await etcdctl(['get', '--prefix', '/ctl/'])).to.equal('');
  });

  it('txn with compares and both branches', async function () {
    await etcdctl(['put', '/txn/k', 'v1']);
    const succeeded = await etcdctl(['txn'], 'value("/txn/k") = "v1"\n\nput /txn/k v2\n\nput /txn/k nope\n\n');
    expect(succeeded).to.equal('SUCCESS\n\nOK\n');
    const failed = await etcdctl(['txn'], 'value("/txn/k") = "v1"\n\nput /txn/k v3\n\nget /txn/k\n\n');
    expect(failed).to.equal('FAILURE\n\n/txn/k\nv2\n');
  });

  it('watch sees puts and deletes made through another member', async function () {
    const watcher = spawn(binary!, [`--endpoints=${cluster.endpoints[2]}`, 'watch', '--prefix', '/watch/'], { env: { ...process.env, ETCDCTL_API: '3' } });
    let output = '';
    watcher.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      // The watch is in place once a put made after it starts shows up.
      await waitFor(
        'the watch to be established',
        async () => {
          await etcdctl(['put', '/watch/probe', 'p']);
          return output.includes('/watch/probe') ? true : undefined;
        },
        20_000,
        300,
      );
      await etcdctl(['put', '/watch/x', '1']);
      await etcdctl(['del', '/watch/x']);
      await waitFor('the delete event', async () => (output.includes('DELETE\n/watch/x\n') ? true : undefined), 20_000);
      expect(output).to.contain('PUT\n/watch/x\n1\n');
    } finally {
      watcher.kill('SIGKILL');
    }
  });

  it('lease grant, keep-alive, timetolive with keys and revoke', async function () {
    const granted = await etcdctl(['lease', 'grant', '30']);
    const id = /lease ([0-9a-f]+) granted with TTL\(30s\)/.exec(granted)?.[1];
    expect(id, granted).to.be.a('string');
    expect(await etcdctl(['put', '--lease', id!, '/lease/k', 'v'])).to.equal('OK\n');
    expect(await etcdctl(['lease', 'keep-alive', '--once', id!])).to.match(new RegExp(`lease ${id} keepalived with TTL\\(30\\)`));
    expect(await etcdctl(['lease', 'timetolive', '--keys', id!])).to.match(new RegExp(`lease ${id} granted with TTL\\(30s\\), remaining\\(\\d+s\\), attached keys\\(\\[/lease/k\\]\\)`));
    expect(await etcdctl(['lease', 'list'])).to.contain(id!);
    expect(await etcdctl(['lease', 'revoke', id!])).to.equal(`lease ${id} revoked\n`);
    expect(await etcdctl(['get', '/lease/k'])).to.equal('');
  });

  it('member list, member add (learner) and member remove', async function () {
    // A member publishes its name and client URLs through the log once it sees a leader (as etcd's do), so a fresh
    // cluster may list one without them for a moment, or answer from a member that has not applied it yet.
    const lines = cluster.members.map((member) => `${member.name}, ${member.peerUrl}, ${member.clientUrl}, false`);
    const list = await waitFor('every member to be listed with its name and URLs', async () => {
      const listed = await etcdctl(['member', 'list']);
      return lines.every((line) => listed.includes(line)) ? listed : undefined;
    }, 30_000, 100);
    expect(list.trim().split('\n')).to.have.length(3);
    const added = await etcdctl(['member', 'add', 'm4', '--learner', '--peer-urls=http://127.0.0.1:1']);
    const id = /Member\s+([0-9a-f]+) added to cluster/.exec(added)?.[1];
    expect(id, added).to.be.a('string');
    expect(await etcdctl(['member', 'list'])).to.contain(`${id}, unstarted, , http://127.0.0.1:1, , true`);
    expect(await etcdctl(['member', 'remove', id!])).to.match(new RegExp(`Member\\s+${id} removed from cluster`));
    expect(await etcdctl(['member', 'list'])).to.not.contain(id!);
  });

  it('endpoint status and endpoint health', async function () {
    const status = JSON.parse(await etcdctl(['endpoint', 'status', '-w', 'json'])) as Array<{ Endpoint: string; Status: { leader: number; raftTerm: number } }>;
    expect(status).to.have.length(3);
    const leaders = new Set(status.map((entry) => entry.Status.leader));
    expect(leaders.size).to.equal(1);
    const health = await etcdctl(['endpoint', 'health'], undefined, true);
    for (const endpoint of cluster.endpoints) expect(health).to.contain(`${endpoint} is healthy`);
  });

  it('answers what mast does not implement with UNIMPLEMENTED and a message saying so', async function () {
    const error = await etcdctl(['endpoint', 'hashkv']).then(
      () => undefined,
      (failure: Error) => failure.message,
    );
    expect(error).to.match(/Unimplemented/);
    expect(error).to.contain('mast does not implement Maintenance.HashKV');
  });
});
