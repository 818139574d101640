// The volume manager on a temporary root directory: emptyDir, hostPath
// type checks, configMap and secret projection (keys, items, modes, the
// ..data symlink swap that keeps readers from ever seeing a half-written
// update), subPath (made, and refused when absolute, with '..' or leading
// out through a symlink), persistentVolumeClaims bound or not, and cleanup.

import { expect } from 'chai';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Volume } from '../../proto/gen/resources/v1/core.js';
import { PodConfigError } from '../../services/agent/pod-environment-types.js';
import { VolumeManager, writeAtomically, type FileProjection } from '../../services/agent/volumes.js';

interface Store {
  configMaps: Map<string, ConfigMap>;
  secrets: Map<string, Secret>;
  claims: Map<string, PersistentVolumeClaim>;
  volumes: Map<string, PersistentVolume>;
}

const podWith = (volumes: Volume[], volumeMounts: NonNullable<NonNullable<Pod['spec']>['containers']>[number]['volumeMounts'] = []): Pod => ({
  metadata: { name: 'web-0', namespace: 'shop', uid: 'pod-uid-1' },
  spec: { volumes, containers: [{ name: 'app', volumeMounts }] },
});

async function rejection(promise: Promise<unknown>, reason: string): Promise<PodConfigError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(PodConfigError);
    expect((error as PodConfigError).reason).to.equal(reason);
    return error as PodConfigError;
  }
  throw new Error(`expected a PodConfigError(${reason})`);
}

const base64 = (text: string): string => Buffer.from(text).toString('base64');
const modeOf = (path: string): number => statSync(path).mode & 0o777;

describe('agent: volumes (VolumeManager)', function () {
  let root: string;
  let host: string;
  let store: Store;
  let manager: VolumeManager;
  let nodeLabels: Record<string, string>;

  beforeEach(function () {
    root = mkdtempSync(join(tmpdir(), 'mast-volumes-'));
    host = join(root, 'host');
    mkdirSync(host);
    store = { configMaps: new Map(), secrets: new Map(), claims: new Map(), volumes: new Map() };
    nodeLabels = { 'kubernetes.io/hostname': 'n1', zone: 'a' };
    manager = new VolumeManager({
      rootDir: join(root, 'agent'),
      nodeName: 'n1',
      nodeLabels: () => nodeLabels,
      objects: {
        getConfigMap: (namespace, name) => store.configMaps.get(`${namespace}/${name}`),
        getSecret: async (namespace, name) => store.secrets.get(`${namespace}/${name}`),
        getClaim: (namespace, name) => store.claims.get(`${namespace}/${name}`),
        getVolume: (name) => store.volumes.get(name),
      },
    });
  });

  afterEach(function () {
    rmSync(root, { recursive: true, force: true });
  });

  it('makes an emptyDir (world-writable) under pods/<uid>/volumes/kubernetes.io~empty-dir, also for medium Memory', async function () {
    const pod = podWith([{ name: 'scratch', emptyDir: {} }, { name: 'fast', emptyDir: { medium: 'Memory' } }], [{ name: 'scratch', mountPath: '/scratch' }]);
    await manager.prepare(pod);
    const dir = join(root, 'agent', 'pods', 'pod-uid-1', 'volumes', 'kubernetes.io~empty-dir', 'scratch');
    expect(statSync(dir).isDirectory()).to.equal(true);
    expect(modeOf(dir)).to.equal(0o777);
    expect(statSync(join(root, 'agent', 'pods', 'pod-uid-1', 'volumes', 'kubernetes.io~empty-dir', 'fast')).isDirectory()).to.equal(true);
    const [mount] = await manager.mounts(pod, pod.spec!.containers![0]!);
    expect(mount).to.include({ containerPath: '/scratch', hostPath: dir, readonly: false });
  });

  describe('hostPath types', function () {
    let server: Server | undefined;
    afterEach(function (done) {
      if (server === undefined) return done();
      server.close(() => done());
      server = undefined;
    });

    it('creates for DirectoryOrCreate and FileOrCreate, and accepts what exists', async function () {
      const pod = podWith([
        { name: 'd', hostPath: { path: join(host, 'made/dir'), type: 'DirectoryOrCreate' } },
        { name: 'f', hostPath: { path: join(host, 'made.txt'), type: 'FileOrCreate' } },
        { name: 'any', hostPath: { path: join(host, 'not-there') } },
      ]);
      await manager.prepare(pod);
      expect(statSync(join(host, 'made/dir')).isDirectory()).to.equal(true);
      expect(statSync(join(host, 'made.txt')).isFile()).to.equal(true);
      expect(existsSync(join(host, 'not-there'))).to.equal(false);
      await manager.prepare(podWith([{ name: 'd', hostPath: { path: join(host, 'made/dir'), type: 'Directory' } }, { name: 'f', hostPath: { path: join(host, 'made.txt'), type: 'File' } }]));
    });

    it('refuses a missing Directory, a directory as File, a file as Socket, with FailedMount naming the path', async function () {
      writeFileSync(join(host, 'plain'), 'x');
      const missing = await rejection(manager.prepare(podWith([{ name: 'd', hostPath: { path: join(host, 'nope'), type: 'Directory' } }])), 'FailedMount');
      expect(missing.message).to.equal(`MountVolume.SetUp failed for volume "d" : hostPath type check failed: ${join(host, 'nope')} is not a directory`);
      expect((await rejection(manager.prepare(podWith([{ name: 'f', hostPath: { path: host, type: 'File' } }])), 'FailedMount')).message).to.include(`${host} is not a file`);
      expect((await rejection(manager.prepare(podWith([{ name: 's', hostPath: { path: join(host, 'plain'), type: 'Socket' } }])), 'FailedMount')).message).to.include('is not a socket file');
      expect((await rejection(manager.prepare(podWith([{ name: 'x', hostPath: { path: host, type: 'Weird' } }])), 'FailedMount')).message).to.include('Weird is an invalid volume type');
      expect((await rejection(manager.prepare(podWith([{ name: 'c', hostPath: { path: join(host, 'plain'), type: 'CharDevice' } }])), 'FailedMount')).message).to.include('is not a character device');
    });

    it('accepts a Socket that is one', async function () {
      const path = join(host, 'app.sock');
      server = createServer();
      await new Promise<void>((done) => server!.listen(path, done));
      await manager.prepare(podWith([{ name: 's', hostPath: { path, type: 'Socket' } }]));
    });
  });

  describe('configMap and secret volumes', function () {
    it('projects every key through ..data symlinks, read-only, with the default mode 0644', async function () {
      store.configMaps.set('shop/cfg', { data: { 'app.conf': 'a=1\n', other: 'o' }, binaryData: { 'logo.bin': base64('\u0001\u0002') } });
      const pod = podWith([{ name: 'config', configMap: { name: 'cfg' } }], [{ name: 'config', mountPath: '/etc/app' }]);
      await manager.prepare(pod);
      const dir = join(root, 'agent', 'pods', 'pod-uid-1', 'volumes', 'kubernetes.io~configmap', 'config');
      expect(readFileSync(join(dir, 'app.conf'), 'utf8')).to.equal('a=1\n');
      expect(readFileSync(join(dir, 'logo.bin'))).to.deep.equal(Buffer.from([1, 2]));
      expect(readlinkSync(join(dir, 'app.conf'))).to.equal('..data/app.conf');
      expect(readlinkSync(join(dir, '..data'))).to.match(/^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\./);
      expect(modeOf(join(dir, 'app.conf'))).to.equal(0o644);
      const [mount] = await manager.mounts(pod, pod.spec!.containers![0]!);
      expect(mount).to.include({ hostPath: dir, containerPath: '/etc/app', readonly: true });
    });

    it('projects items to their paths and modes, and decodes secrets (stringData over data)', async function () {
      store.secrets.set('shop/creds', { data: { user: base64('admin'), password: base64('hunter2') }, stringData: { user: 'root' } });
      store.configMaps.set('shop/cfg', { data: { 'app.conf': 'a=1', unused: 'u' } });
      const pod = podWith([
        { name: 'creds', secret: { secretName: 'creds', defaultMode: 0o400, items: [{ key: 'password', path: 'db/password' }, { key: 'user', path: 'user', mode: 0o440 }] } },
        { name: 'config', configMap: { name: 'cfg', items: [{ key: 'app.conf', path: 'conf/app.conf' }] } },
      ]);
      await manager.prepare(pod);
      const secretDir = join(root, 'agent', 'pods', 'pod-uid-1', 'volumes', 'kubernetes.io~secret', 'creds');
      expect(readFileSync(join(secretDir, 'db/password'), 'utf8')).to.equal('hunter2');
      expect(readFileSync(join(secretDir, 'user'), 'utf8')).to.equal('root');
      expect(modeOf(join(secretDir, 'db/password'))).to.equal(0o400);
      expect(modeOf(join(secretDir, 'user'))).to.equal(0o440);
      const configDir = join(root, 'agent', 'pods', 'pod-uid-1', 'volumes', 'kubernetes.io~configmap', 'config');
      expect(readdirSync(configDir).filter((name) => !name.startsWith('..'))).to.deep.equal(['conf']);
      expect(readFileSync(join(configDir, 'conf/app.conf'), 'utf8')).to.equal('a=1');
    });

    it('fails with FailedMount for a missing object or item key, and projects nothing for an optional one', async function () {
      expect((await rejection(manager.prepare(podWith([{ name: 'config', configMap: { name: 'gone' } }])), 'FailedMount')).message).to.equal('MountVolume.SetUp failed for volume "config" : configmap "gone" not found');
      expect((await rejection(manager.prepare(podWith([{ name: 'creds', secret: { secretName: 'gone' } }])), 'FailedMount')).message).to.include('secret "gone" not found');
      store.configMaps.set('shop/cfg', { data: { a: '1' } });
      expect((await rejection(manager.prepare(podWith([{ name: 'config', configMap: { name: 'cfg', items: [{ key: 'b', path: 'b' }] } }])), 'FailedMount')).message).to.include('configmap references non-existent config key: b');
      await manager.prepare(podWith([{ name: 'opt', configMap: { name: 'gone', optional: true } }, { name: 'cfg', configMap: { name: 'cfg', optional: true, items: [{ key: 'b', path: 'b' }] } }]));
      expect(readdirSync(join(root, 'agent', 'pods', 'pod-uid-1', 'volumes', 'kubernetes.io~configmap', 'opt')).filter((name) => !name.startsWith('..'))).to.deep.equal([]);
    });

    it('updates atomically: readers see the old or the new files, never a mix or a part; removed keys go; unchanged data writes nothing', async function () {
      const size = 1024 * 1024;
      const versions = new Map(['a', 'x', 'y', 'z'].map((letter) => [letter, letter.repeat(size)]));
      const big = (letter: string): string => versions.get(letter)!;
      store.configMaps.set('shop/cfg', { data: { a: big('a'), b: 'first', gone: 'soon' } });
      const pod = podWith([{ name: 'config', configMap: { name: 'cfg' } }]);
      await manager.prepare(pod);
      const dir = join(root, 'agent', 'pods', 'pod-uid-1', 'volumes', 'kubernetes.io~configmap', 'config');
      const firstData = readlinkSync(join(dir, '..data'));
      await manager.prepare(pod);
      expect(readlinkSync(join(dir, '..data'))).to.equal(firstData);

      let reading = true;
      const seen = new Set<string>();
      const reader = (async () => {
        while (reading) {
          // Through ..data once, as a consumer that wants a consistent pair would read.
          try {
            const data = readlinkSync(join(dir, '..data'));
            const a = readFileSync(join(dir, data, 'a'), 'utf8');
            const b = readFileSync(join(dir, data, 'b'), 'utf8');
            seen.add(`${a[0]}${a.length}/${b}`);
          } catch (error) {
            // The old directory may vanish between readlink and read: that is a retry, never a torn file.
            if ((error as { code?: string }).code !== 'ENOENT') throw error;
          }
          try {
            const direct = readFileSync(join(dir, 'a'), 'utf8');
            expect(direct === versions.get(direct[0] ?? ''), 'a whole version of a').to.equal(true);
          } catch (error) {
            if ((error as { code?: string }).code !== 'ENOENT') throw error;
          }
          await new Promise((done) => setImmediate(done));
        }
      })();
      for (const [index, letter] of ['x', 'y', 'z'].entries()) {
        store.configMaps.set('shop/cfg', { data: { a: big(letter), b: `v${index}` } });
        await manager.prepare(pod);
        await new Promise((done) => setTimeout(done, 5));
      }
      reading = false;
      await reader;
      expect(seen.size, 'the reader saw the updates happen').to.be.greaterThan(1);
      for (const value of seen) expect([`a${size}/first`, `x${size}/v0`, `y${size}/v1`, `z${size}/v2`]).to.include(value);
      expect(readFileSync(join(dir, 'a'), 'utf8')[0]).to.equal('z');
      expect(existsSync(join(dir, 'gone'))).to.equal(false);
      expect(lstatSync(join(dir, 'b')).isSymbolicLink()).to.equal(true);
      expect(readdirSync(dir).filter((name) => name.startsWith('..') && name !== '..data')).to.have.length(1);
    });

    it('refuses payload paths with .. (the writer itself)', async function () {
      const payload = new Map<string, FileProjection>([['../escape', { data: new Uint8Array([1]), mode: 0o644 }]]);
      let failure: unknown;
      await writeAtomically(join(root, 'w'), payload, new Date()).catch((error: unknown) => (failure = error));
      expect(String(failure)).to.include("must not contain '..'");
    });
  });

  describe('subPath', function () {
    it('mounts a subdirectory of the volume, made when missing, and a configMap key as its file', async function () {
      store.configMaps.set('shop/cfg', { data: { 'nginx.conf': 'server {}' } });
      const pod = podWith(
        [{ name: 'data', emptyDir: {} }, { name: 'config', configMap: { name: 'cfg' } }],
        [
          { name: 'data', mountPath: '/var/lib/app', subPath: 'app/state' },
          { name: 'config', mountPath: '/etc/nginx/nginx.conf', subPath: 'nginx.conf' },
          { name: 'data', mountPath: '/logs', subPathExpr: 'logs/$(POD_NAME)' },
        ],
      );
      await manager.prepare(pod);
      const mounts = await manager.mounts(pod, pod.spec!.containers![0]!, [{ name: 'POD_NAME', value: 'web-0' }]);
      const volumes = join(root, 'agent', 'pods', 'pod-uid-1', 'volumes');
      expect(mounts.map((mount) => [mount.containerPath, mount.hostPath, mount.readonly])).to.deep.equal([
        ['/var/lib/app', join(volumes, 'kubernetes.io~empty-dir', 'data', 'app/state'), false],
        ['/etc/nginx/nginx.conf', join(volumes, 'kubernetes.io~configmap', 'config', 'nginx.conf'), true],
        ['/logs', join(volumes, 'kubernetes.io~empty-dir', 'data', 'logs/web-0'), false],
      ]);
      expect(statSync(mounts[0]!.hostPath).isDirectory()).to.equal(true);
      expect(readFileSync(mounts[1]!.hostPath, 'utf8')).to.equal('server {}');
    });

    it('refuses an absolute subPath, one with .., one leading out through a symlink, and an unknown volume', async function () {
      const mountsOf = async (subPath: string, name = 'data'): Promise<unknown> => {
        const pod = podWith([{ name: 'data', emptyDir: {} }], [{ name, mountPath: '/x', subPath }]);
        await manager.prepare(pod);
        return manager.mounts(pod, pod.spec!.containers![0]!);
      };
      expect((await rejection(mountsOf('/etc'), 'CreateContainerConfigError')).message).to.include('must not be an absolute path');
      expect((await rejection(mountsOf('a/../../b'), 'CreateContainerConfigError')).message).to.include("must not contain '..'");
      symlinkSync(host, join(root, 'agent', 'pods', 'pod-uid-1', 'volumes', 'kubernetes.io~empty-dir', 'data', 'escape'));
      expect((await rejection(mountsOf('escape'), 'CreateContainerConfigError')).message).to.include('outside its volume');
      expect((await rejection(mountsOf('', 'nope'), 'CreateContainerConfigError')).message).to.equal('cannot find volume "nope" to mount into container "app"');
    });
  });

  describe('persistentVolumeClaims', function () {
    const claim = (name: string, volumeName: string | undefined, phase: string, uid = `uid-${name}`): PersistentVolumeClaim => ({ metadata: { namespace: 'shop', name, uid }, spec: { volumeName }, status: { phase } });
    const pv = (name: string, spec: PersistentVolume['spec'], claimName = 'data-web-0'): PersistentVolume => ({ metadata: { name }, spec: { claimRef: { namespace: 'shop', name: claimName, uid: `uid-${claimName}` }, ...spec } });
    const claimPod = (readOnly = false): Pod => podWith([{ name: 'data', persistentVolumeClaim: { claimName: 'data-web-0', readOnly } }], [{ name: 'data', mountPath: '/data' }]);

    it('mounts the local path of the bound PersistentVolume (node affinity matching)', async function () {
      const path = join(host, 'disk1');
      mkdirSync(path);
      store.claims.set('shop/data-web-0', claim('data-web-0', 'pv-1', 'Bound'));
      store.volumes.set('pv-1', pv('pv-1', { local: { path }, nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }] } } }));
      const pod = claimPod(true);
      await manager.prepare(pod);
      const [mount] = await manager.mounts(pod, pod.spec!.containers![0]!);
      expect(mount).to.include({ containerPath: '/data', hostPath: path, readonly: true });

      nodeLabels = { 'kubernetes.io/hostname': 'n1', zone: 'b' };
      expect((await rejection(manager.prepare(pod), 'FailedMount')).message).to.include('node affinity');
    });

    it('makes a hostPath PersistentVolume directory that is missing, and requires a local one to exist', async function () {
      store.claims.set('shop/data-web-0', claim('data-web-0', 'pv-2', 'Bound'));
      store.volumes.set('pv-2', pv('pv-2', { hostPath: { path: join(host, 'pv-2') } }));
      await manager.prepare(claimPod());
      expect(statSync(join(host, 'pv-2')).isDirectory()).to.equal(true);
      store.volumes.set('pv-2', pv('pv-2', { local: { path: join(host, 'absent') } }));
      expect((await rejection(manager.prepare(claimPod()), 'FailedMount')).message).to.include('does not exist');
    });

    it('fails with FailedMount for a claim that is missing, not bound, or bound to a volume that is not its', async function () {
      expect((await rejection(manager.prepare(claimPod()), 'FailedMount')).message).to.equal('persistentvolumeclaim "data-web-0" not found');
      store.claims.set('shop/data-web-0', claim('data-web-0', undefined, 'Pending'));
      expect((await rejection(manager.prepare(claimPod()), 'FailedMount')).message).to.equal('persistentvolumeclaim "data-web-0" is not bound');
      store.claims.set('shop/data-web-0', claim('data-web-0', 'pv-3', 'Pending'));
      expect((await rejection(manager.prepare(claimPod()), 'FailedMount')).message).to.equal('persistentvolumeclaim "data-web-0" is not bound');
      store.claims.set('shop/data-web-0', claim('data-web-0', 'pv-3', 'Bound'));
      expect((await rejection(manager.prepare(claimPod()), 'FailedMount')).message).to.include('persistentvolume "pv-3"');
      store.volumes.set('pv-3', pv('pv-3', { hostPath: { path: join(host, 'pv-3') } }, 'someone-else'));
      expect((await rejection(manager.prepare(claimPod()), 'FailedMount')).message).to.include('is not bound to persistentvolumeclaim "shop/data-web-0"');
      store.volumes.set('pv-3', pv('pv-3', { nfs: { server: 'nas', path: '/x' } }));
      expect((await rejection(manager.prepare(claimPod()), 'FailedMount')).message).to.include('only local and hostPath');
    });
  });

  it('cleanup removes the pod directory and leaves hostPath contents', async function () {
    writeFileSync(join(host, 'keep'), 'k');
    const pod = podWith([{ name: 'scratch', emptyDir: {} }, { name: 'h', hostPath: { path: host } }], [{ name: 'h', mountPath: '/h', subPath: 'sub' }]);
    await manager.prepare(pod);
    await manager.mounts(pod, pod.spec!.containers![0]!);
    await manager.cleanup('pod-uid-1');
    expect(existsSync(join(root, 'agent', 'pods', 'pod-uid-1'))).to.equal(false);
    expect(readFileSync(join(host, 'keep'), 'utf8')).to.equal('k');
    expect(statSync(join(host, 'sub')).isDirectory()).to.equal(true);
  });
});
