#!/usr/bin/env node
// Builds two OCI image archives from the host's static busybox, for a
// containerd that cannot pull anything:
//
//   <dir>/busybox.tar  docker.io/local/busybox:1  Cmd ["sh"]                  (app image)
//   <dir>/pause.tar    docker.io/local/pause:1    Cmd ["/bin/sleep","infinity"] (sandbox image)
//
// Both share one uncompressed layer: bin/busybox plus a symlink per applet,
// etc/passwd, etc/group, an empty etc/hosts and the usual empty directories.
// Every tar entry has a fixed owner and mtime and the entries are sorted, so
// the same busybox gives the same digests on every run.
//
// Usage: node ops/containerd/build-images.mjs DIR [--busybox PATH]
// Import with: ctr --address SOCK -n k8s.io images import DIR/busybox.tar
// Prints one line per image: "<name> <manifest digest> <archive path>".

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const MTIME = 0; // 1970-01-01T00:00:00Z for every entry
const CREATED = new Date(MTIME * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
const ENV = ['PATH=/bin:/sbin:/usr/bin'];

const IMAGES = [
  { file: 'busybox.tar', name: 'docker.io/local/busybox:1', cmd: ['sh'] },
  { file: 'pause.tar', name: 'docker.io/local/pause:1', cmd: ['/bin/sleep', 'infinity'] },
];

function usage(msg) {
  if (msg) process.stderr.write(`build-images: ${msg}\n`);
  process.stderr.write('usage: node build-images.mjs DIR [--busybox PATH]\n');
  process.exit(2);
}

// ---- arguments -------------------------------------------------------------

let outDir;
let busyboxPath;
{
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--busybox') {
      busyboxPath = args[++i];
      if (!busyboxPath) usage('--busybox needs a path');
    } else if (a === '-h' || a === '--help') {
      usage();
    } else if (a.startsWith('-')) {
      usage(`unknown option ${a}`);
    } else if (outDir === undefined) {
      outDir = a;
    } else {
      usage(`unexpected argument ${a}`);
    }
  }
  if (!outDir) usage('missing DIR');
  outDir = resolve(outDir);
  busyboxPath ??= ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p));
  if (!busyboxPath || !existsSync(busyboxPath)) {
    usage('no busybox found (apt-get install busybox-static, or pass --busybox PATH)');
  }
}

// ---- OCI platform ----------------------------------------------------------

function ociPlatform() {
  const arch = {
    x64: 'amd64',
    arm64: 'arm64',
    arm: 'arm',
    ia32: '386',
    ppc64: 'ppc64le', // Node on ppc64 Linux is little-endian
    s390x: 's390x',
    riscv64: 'riscv64',
    loong64: 'loong64',
    mips: 'mips',
    mipsel: 'mipsle',
  }[process.arch];
  if (!arch) throw new Error(`no OCI architecture known for node arch ${process.arch}`);
  const p = { architecture: arch, os: 'linux' };
  if (arch === 'arm') p.variant = `v${process.config.variables.arm_version ?? '7'}`;
  return p;
}

// ---- a minimal, deterministic ustar writer ---------------------------------

function octal(n, width) {
  // width bytes: width-1 octal digits then NUL
  const s = n.toString(8);
  if (s.length > width - 1) throw new Error(`tar: ${n} does not fit in ${width} bytes`);
  return s.padStart(width - 1, '0') + '\0';
}

function splitName(name) {
  const b = Buffer.byteLength(name);
  if (b <= 100) return { name, prefix: '' };
  // ustar: prefix (<=155) + '/' + name (<=100), split at a slash
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/') continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest.length > 0) {
      return { name: rest, prefix };
    }
  }
  throw new Error(`tar: path too long for ustar: ${name}`);
}

function tarHeader({ path, type, mode, size = 0, linkname = '' }) {
  const h = Buffer.alloc(512, 0);
  const { name, prefix } = splitName(path);
  const put = (str, off, len) => {
    const b = Buffer.from(str, 'utf8');
    if (b.length > len) throw new Error(`tar: field too long: ${str}`);
    b.copy(h, off);
  };
  put(name, 0, 100);
  put(octal(mode, 8), 100, 8);
  put(octal(0, 8), 108, 8); // uid
  put(octal(0, 8), 116, 8); // gid
  put(octal(size, 12), 124, 12);
  put(octal(MTIME, 12), 136, 12);
  put('        ', 148, 8); // checksum placeholder
  put(type, 156, 1);
  put(linkname, 157, 100);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put('root', 265, 32);
  put('root', 297, 32);
  put(octal(0, 8), 329, 8); // devmajor
  put(octal(0, 8), 337, 8); // devminor
  put(prefix, 345, 155);
  let sum = 0;
  for (const byte of h) sum += byte;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** entries: [{path, type: 'dir'|'file'|'symlink', mode?, data?, target?}] */
function tar(entries) {
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const chunks = [];
  for (const e of sorted) {
    if (e.type === 'dir') {
      chunks.push(tarHeader({ path: e.path.endsWith('/') ? e.path : `${e.path}/`, type: '5', mode: e.mode ?? 0o755 }));
    } else if (e.type === 'symlink') {
      chunks.push(tarHeader({ path: e.path, type: '2', mode: 0o777, linkname: e.target }));
    } else {
      const data = Buffer.isBuffer(e.data) ? e.data : Buffer.from(e.data, 'utf8');
      chunks.push(tarHeader({ path: e.path, type: '0', mode: e.mode ?? 0o644, size: data.length }));
      chunks.push(data);
      const pad = (512 - (data.length % 512)) % 512;
      if (pad) chunks.push(Buffer.alloc(pad, 0));
    }
  }
  chunks.push(Buffer.alloc(1024, 0)); // end of archive
  return Buffer.concat(chunks);
}

// ---- the layer -------------------------------------------------------------

function applets(bb) {
  const out = execFileSync(bb, ['--list'], { encoding: 'utf8' });
  const names = out
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s && s !== 'busybox' && !s.includes('/'));
  if (names.length === 0) throw new Error(`${bb} --list printed no applets`);
  return [...new Set(names)];
}

function buildLayer(bb) {
  const entries = [
    ...['bin', 'dev', 'etc', 'proc', 'root', 'run', 'sbin', 'sys', 'usr', 'usr/bin', 'usr/sbin', 'var'].map((path) => ({
      path,
      type: 'dir',
      mode: path === 'root' ? 0o700 : 0o755,
    })),
    { path: 'tmp', type: 'dir', mode: 0o1777 },
    { path: 'var/tmp', type: 'dir', mode: 0o1777 },
    { path: 'bin/busybox', type: 'file', mode: 0o755, data: readFileSync(bb) },
    ...applets(bb).map((a) => ({ path: `bin/${a}`, type: 'symlink', target: 'busybox' })),
    // Shebangs commonly say /usr/bin/env.
    { path: 'usr/bin/env', type: 'symlink', target: '../../bin/busybox' },
    {
      path: 'etc/passwd',
      type: 'file',
      data: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
    },
    { path: 'etc/group', type: 'file', data: 'root:x:0:\nnobody:x:65534:\n' },
    { path: 'etc/hosts', type: 'file', data: '' },
  ];
  return tar(entries);
}

// ---- the OCI archive -------------------------------------------------------

const sha256 = (buf) => `sha256:${createHash('sha256').update(buf).digest('hex')}`;
const json = (obj) => Buffer.from(JSON.stringify(obj), 'utf8');

function buildImage({ name, cmd }, layer, layerDigest, platform) {
  const config = json({
    created: CREATED,
    ...platform,
    config: { Env: ENV, Cmd: cmd, WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [layerDigest] },
    history: [{ created: CREATED, created_by: 'mast ops/containerd/build-images.mjs' }],
  });
  const configDigest = sha256(config);
  const manifest = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }],
  });
  const manifestDigest = sha256(manifest);
  const index = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: manifestDigest,
        size: manifest.length,
        platform,
        annotations: { 'io.containerd.image.name': name },
      },
    ],
  });
  const blob = (digest, data) => ({ path: `blobs/sha256/${digest.slice('sha256:'.length)}`, type: 'file', data });
  const archive = tar([
    { path: 'oci-layout', type: 'file', data: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    { path: 'index.json', type: 'file', data: index },
    { path: 'blobs', type: 'dir' },
    { path: 'blobs/sha256', type: 'dir' },
    blob(layerDigest, layer),
    blob(configDigest, config),
    blob(manifestDigest, manifest),
  ]);
  return { archive, manifestDigest };
}

// ---- main ------------------------------------------------------------------

const platform = ociPlatform();
const layer = buildLayer(busyboxPath);
const layerDigest = sha256(layer);
mkdirSync(outDir, { recursive: true });
for (const img of IMAGES) {
  const { archive, manifestDigest } = buildImage(img, layer, layerDigest, platform);
  const dest = join(outDir, img.file);
  const tmp = `${dest}.tmp-${process.pid}`;
  writeFileSync(tmp, archive);
  renameSync(tmp, dest);
  process.stdout.write(`${img.name} ${manifestDigest} ${dest}\n`);
}
