// mast cri's pure parts: image reference normalisation and table lookup,
// the --image-table format, how a container's command becomes a host
// command line, CRI log entry splitting, pod IP allocation and /proc/<pid>/stat.

import { expect } from 'chai';
import type { HostLookup } from '../../services/cri/commands.js';
import { CommandError, mergeCommand, resolveArgv } from '../../services/cri/commands.js';
import { builtinImageTable, extendImageTable, findImage, imageId, knownImageNames, parseImageReference } from '../../services/cri/images.js';
import { nextFreeIp, parseCidr } from '../../services/cri/ipam.js';
import { MAX_LOG_LINE_BYTES, splitLogEntries } from '../../services/cri/logs.js';
import { parseProcStat } from '../../services/cri/processes.js';

const PROGRAMS = { node: '/opt/node/bin/node', httpdScript: '/opt/mast/httpd.js', pauseScript: '/opt/mast/pause.js' };
const TABLE = builtinImageTable(PROGRAMS);

function fakeHost(files: readonly string[], busybox: boolean): HostLookup {
  const executables = new Set(files);
  return {
    busyboxPath: busybox ? '/usr/bin/busybox' : undefined,
    busyboxApplets: new Set(busybox ? ['sh', 'sleep', 'echo'] : []),
    isExecutable: (path) => executables.has(path),
    lookPath: (name, searchPath) => searchPath.split(':').map((directory) => `${directory}/${name}`).find((path) => executables.has(path)),
  };
}

const CONTEXT = { rootfs: '/r/rootfs', cwd: '/r/rootfs/app', searchPath: '/usr/bin:/bin' };

describe('mast cri: image table and commands', () => {
  it('normalises references as containerd does', () => {
    const normalised = (reference: string): string => parseImageReference(reference).normalised;
    expect(normalised('busybox')).to.equal('docker.io/library/busybox:latest');
    expect(normalised('busybox:1.36')).to.equal('docker.io/library/busybox:1.36');
    expect(normalised('library/busybox')).to.equal('docker.io/library/busybox:latest');
    expect(normalised('index.docker.io/library/busybox:1')).to.equal('docker.io/library/busybox:1');
    expect(normalised('myorg/app:v2')).to.equal('docker.io/myorg/app:v2');
    expect(normalised('localhost:5000/app')).to.equal('localhost:5000/app:latest');
    expect(normalised('registry.k8s.io/pause:3.9')).to.equal('registry.k8s.io/pause:3.9');
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(parseImageReference(`docker.io/library/busybox@${digest}`)).to.deep.equal({ repo: 'docker.io/library/busybox', tag: undefined, digest, normalised: `docker.io/library/busybox@${digest}` });
    expect(normalised(`busybox:1.36@${digest}`)).to.equal(`docker.io/library/busybox:1.36@${digest}`);
    expect(() => parseImageReference('Busybox')).to.throw('invalid repository name');
    expect(() => parseImageReference('busybox:bad tag')).to.throw('invalid tag');
    expect(() => parseImageReference('')).to.throw('empty image reference');
  });

  it('finds any tag or digest of a table repository, and an image by its id', () => {
    for (const reference of ['busybox', 'busybox:1.36', 'docker.io/library/busybox:latest', `docker.io/library/busybox@sha256:${'b'.repeat(64)}`, imageId('docker.io/library/busybox')]) {
      expect(findImage(TABLE, reference)?.entry.name, reference).to.equal('busybox');
    }
    expect(findImage(TABLE, imageId('docker.io/library/busybox').slice('sha256:'.length))?.entry.name).to.equal('busybox');
    expect(findImage(TABLE, 'registry.k8s.io/pause:3.9')?.entry).to.include({ name: 'pause', pinned: true });
    expect(findImage(TABLE, 'docker.io/local/pause')?.entry.name).to.equal('pause');
    expect(findImage(TABLE, 'busybox2')).to.equal(undefined);
    expect(findImage(TABLE, `sha256:${'c'.repeat(64)}`)).to.equal(undefined);
    expect(imageId('docker.io/library/busybox')).to.match(/^sha256:[0-9a-f]{64}$/);
    expect(knownImageNames(TABLE)).to.equal('busybox, node, httpd, nginx, host, pause');
  });

  it('reads --image-table documents, naming the key and field at fault', () => {
    const table = extendImageTable(TABLE, { python: { command: ['/usr/bin/python3'], defaultArgs: ['-V'] }, busybox: { applets: false } }, 'images.json');
    expect(findImage(table, 'python:3.12')?.entry).to.deep.include({ repo: 'docker.io/library/python', command: ['/usr/bin/python3'], defaultArgs: ['-V'], applets: false });
    expect(findImage(table, 'busybox')?.entry.applets).to.equal(false);
    expect(() => extendImageTable(TABLE, [], 'images.json')).to.throw('images.json: the image table must be a JSON object');
    expect(() => extendImageTable(TABLE, { python: { command: 'python3' } }, 'f.json')).to.throw('f.json: "python".command must be an array of strings');
    expect(() => extendImageTable(TABLE, { python: { cmd: [] } }, 'f.json')).to.throw('f.json: "python": unknown field "cmd"');
    expect(() => extendImageTable(TABLE, { 'python:3': {} }, 'f.json')).to.throw('without a tag or digest');
    expect(() => extendImageTable(TABLE, { python: { programs: { python: [] } } }, 'f.json')).to.throw('"python".programs.python must not be empty');
  });

  it('merges the pod command with the image entrypoint and default args', () => {
    const busybox = findImage(TABLE, 'busybox')?.entry;
    const httpd = findImage(TABLE, 'httpd')?.entry;
    const host = findImage(TABLE, 'host')?.entry;
    if (busybox === undefined || httpd === undefined || host === undefined) throw new Error('built-ins missing');
    expect(mergeCommand(busybox, [], []).argv).to.deep.equal(['sh']);
    expect(mergeCommand(busybox, ['sleep'], ['5']).argv).to.deep.equal(['sleep', '5']);
    expect(mergeCommand(httpd, [], ['-p', '8080']).argv).to.deep.equal(['/opt/node/bin/node', '/opt/mast/httpd.js', '--flavor', 'httpd', '-p', '8080']);
    expect(() => mergeCommand(host, [], [])).to.throw(CommandError, 'image host has no default command');
  });

  it('runs programs as busybox applets, image programs, container files or from the host PATH', () => {
    const busybox = findImage(TABLE, 'busybox')?.entry;
    const node = findImage(TABLE, 'node')?.entry;
    const nginx = findImage(TABLE, 'nginx')?.entry;
    if (busybox === undefined || node === undefined || nginx === undefined) throw new Error('built-ins missing');
    const withBusybox = fakeHost(['/opt/node/bin/node', '/bin/cat', '/r/rootfs/scripts/run.sh', '/r/rootfs/app/local.sh'], true);
    const resolve = (image: typeof busybox, argv: string[], host = withBusybox): string[] => resolveArgv(image, argv, CONTEXT, host, 'config.command');
    expect(resolve(busybox, ['sh', '-c', 'echo hi'])).to.deep.equal(['/usr/bin/busybox', 'sh', '-c', 'echo hi']);
    expect(resolve(busybox, ['/bin/sleep', '1'])).to.deep.equal(['/usr/bin/busybox', 'sleep', '1']);
    expect(resolve(busybox, ['cat', 'x'])).to.deep.equal(['/bin/cat', 'x']);
    expect(resolve(busybox, ['/scripts/run.sh'])).to.deep.equal(['/r/rootfs/scripts/run.sh']);
    expect(resolve(busybox, ['./local.sh'])).to.deep.equal(['/r/rootfs/app/local.sh']);
    expect(resolve(node, ['node', '-e', '1'])).to.deep.equal(['/opt/node/bin/node', '-e', '1']);
    expect(resolve(node, ['/usr/local/bin/node', 'app.js'])).to.deep.equal(['/opt/node/bin/node', 'app.js']);
    expect(resolve(nginx, ['nginx', '-g', 'daemon off;'])).to.deep.equal(['/opt/node/bin/node', '/opt/mast/httpd.js', '--flavor', 'nginx', '-g', 'daemon off;']);
    const withoutBusybox = fakeHost(['/bin/sh', '/usr/bin/sleep'], false);
    expect(resolve(busybox, ['sh', '-c', 'true'], withoutBusybox)).to.deep.equal(['/bin/sh', '-c', 'true']);
    expect(resolve(busybox, ['/bin/sleep', '1'], withoutBusybox)).to.deep.equal(['/usr/bin/sleep', '1']);
    expect(() => resolve(busybox, ['nope'], withoutBusybox)).to.throw(CommandError, '"nope" not found: not a program of image busybox, no busybox on the host, not on the host PATH (/usr/bin:/bin)');
  });
});

describe('mast cri: logs, pod IPs and /proc', () => {
  it('splits output into whole lines (F) and 16 KiB pieces of longer ones (P)', () => {
    const text = (entries: ReturnType<typeof splitLogEntries>['entries']): string[] => entries.map((entry) => `${entry.tag}:${entry.content.toString()}`);
    const whole = splitLogEntries(Buffer.from('a\nbb\npartial'), false);
    expect(text(whole.entries)).to.deep.equal(['F:a', 'F:bb']);
    expect(whole.consumed).to.equal(5);
    expect(text(splitLogEntries(Buffer.from('partial'), true).entries)).to.deep.equal(['F:partial']);
    expect(text(splitLogEntries(Buffer.from('\n'), false).entries)).to.deep.equal(['F:']);
    const long = `${'x'.repeat(MAX_LOG_LINE_BYTES * 2 + 3)}\n`;
    expect(splitLogEntries(Buffer.from(long), false).entries.map((entry) => [entry.tag, entry.content.length])).to.deep.equal([
      ['P', MAX_LOG_LINE_BYTES],
      ['P', MAX_LOG_LINE_BYTES],
      ['F', 3],
    ]);
    const unfinished = splitLogEntries(Buffer.from('y'.repeat(MAX_LOG_LINE_BYTES + 10)), false);
    expect(unfinished.entries.map((entry) => [entry.tag, entry.content.length])).to.deep.equal([['P', MAX_LOG_LINE_BYTES]]);
    expect(unfinished.consumed).to.equal(MAX_LOG_LINE_BYTES);
  });

  it('hands out pod IPs in order, skipping taken ones and not reusing a freed one at once', () => {
    const cidr = parseCidr('127.10.0.0/30');
    expect(nextFreeIp(cidr, new Set(), '')).to.equal('127.10.0.2');
    expect(nextFreeIp(cidr, new Set(['127.10.0.2']), '127.10.0.2')).to.equal(undefined);
    const wide = parseCidr('127.10.0.0/16');
    expect(nextFreeIp(wide, new Set(), '127.10.0.2')).to.equal('127.10.0.3');
    expect(nextFreeIp(wide, new Set(['127.10.0.3']), '127.10.0.2')).to.equal('127.10.0.4');
    expect(nextFreeIp(wide, new Set(), '127.10.255.254')).to.equal('127.10.0.2');
    expect(nextFreeIp(wide, new Set(), '127.10.0.255')).to.equal('127.10.1.0');
    expect(() => parseCidr('127.10.0.0')).to.throw('not an IPv4 CIDR');
    expect(() => parseCidr('127.10.0.0/31')).to.throw('between 8 and 30');
  });

  it('parses /proc/<pid>/stat whatever the command name holds', () => {
    const fields = ['S', '1', '42', '42', '0', '-1', '4194560', '100', '0', '0', '0', '7', '3', '2', '1', '20', '0', '1', '0', '123456', '0'];
    expect(parseProcStat(`42 (we ird) name)) ${fields.join(' ')}\n`)).to.deep.equal({
      pid: 42,
      state: 'S',
      ppid: 1,
      pgid: 42,
      sid: 42,
      utimeTicks: 7,
      stimeTicks: 3,
      cutimeTicks: 2,
      cstimeTicks: 1,
      startTimeTicks: 123456,
    });
  });
});
