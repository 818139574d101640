// `mast snapshot restore FILE --data-dir DIR --name NAME --initial-cluster ...
// --initial-advertise-peer-urls URL [--initial-cluster-token T]`, as
// `etcdutl snapshot restore`: check the file's sha256, then write a fresh data
// dir for one member of a new cluster holding the saved state (see
// services/store/snapshot-restore.ts). Run it once per member of the new
// cluster, then start each with `mast master` and the same flags.
// `mast snapshot status FILE` checks a file and prints what it holds.

import { readFile } from 'node:fs/promises';
import { formatId, InitialClusterError } from '../store/index.js';
import { restoreSnapshot, SnapshotRestoreError, verifySnapshotFile } from '../store/snapshot-restore.js';

export const SNAPSHOT_USAGE = `usage:
  mast snapshot restore FILE --data-dir DIR --name NAME --initial-cluster NAME=PEER_URL,... --initial-advertise-peer-urls URL [--initial-cluster-token TOKEN]
      write a new data dir for member NAME of a NEW cluster whose state is the snapshot's (run once per member;
      the snapshot's old members are dropped), then start it: mast master --data-dir DIR --name NAME ... (same flags)
  mast snapshot status FILE
      check the file's sha256 and print its revision, key count and size

Snapshots come from mastctl snapshot save FILE (or etcdctl snapshot save against a master).`;

const RESTORE_FLAGS = new Set(['data-dir', 'name', 'initial-cluster', 'initial-advertise-peer-urls', 'initial-cluster-token']);

export class SnapshotUsageError extends Error {
  override readonly name = 'SnapshotUsageError';
}

function parseFlags(args: readonly string[]): { positional: string[]; flags: Map<string, string> } {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    const match = /^--([^=]+)(?:=(.*))?$/.exec(arg);
    if (match === null) {
      positional.push(arg);
      continue;
    }
    const name = match[1]!;
    if (!RESTORE_FLAGS.has(name)) throw new SnapshotUsageError(`unknown flag --${name}\n\n${SNAPSHOT_USAGE}`);
    const value = match[2] ?? args[++index];
    if (value === undefined) throw new SnapshotUsageError(`flag --${name} needs a value`);
    flags.set(name, value);
  }
  return { positional, flags };
}

function required(flags: Map<string, string>, name: string): string {
  const value = flags.get(name);
  if (value === undefined || value === '') throw new SnapshotUsageError(`mast snapshot restore needs --${name}\n\n${SNAPSHOT_USAGE}`);
  return value;
}

/** Returns the exit code: 0 done, 1 the file or the data dir is refused, 2 usage. */
export async function runSnapshotCommand(args: readonly string[], out: (line: string) => void, err: (line: string) => void): Promise<number> {
  if (args.length === 0 || args[0] === 'help' || args.includes('--help') || args.includes('-h')) {
    out(SNAPSHOT_USAGE);
    return args.length === 0 ? 2 : 0;
  }
  try {
    const { positional, flags } = parseFlags(args);
    const [verb, file, ...extra] = positional;
    if (verb === undefined) throw new SnapshotUsageError(SNAPSHOT_USAGE);
    if (file === undefined || extra.length > 0) throw new SnapshotUsageError(`mast snapshot ${verb} takes one FILE\n\n${SNAPSHOT_USAGE}`);
    if (verb === 'status') {
      const { summary } = verifySnapshotFile(file, new Uint8Array(await readFile(file)));
      out(`${file}: revision ${summary.revision}, compacted to ${summary.compactRevision}, ${summary.keyCount} keys, from members ${summary.members.map((member) => member.name || formatId(member.id)).join(',')}`);
      return 0;
    }
    if (verb !== 'restore') throw new SnapshotUsageError(`unknown snapshot command ${JSON.stringify(verb)}\n\n${SNAPSHOT_USAGE}`);
    const dataDir = required(flags, 'data-dir');
    const name = required(flags, 'name');
    const result = await restoreSnapshot({
      file,
      dataDir,
      name,
      initialCluster: required(flags, 'initial-cluster'),
      peerUrls: required(flags, 'initial-advertise-peer-urls').split(',').map((url) => url.trim()).filter((url) => url !== ''),
      clusterToken: flags.get('initial-cluster-token') ?? 'mast-cluster',
    });
    out(
      `restored snapshot ${file} (revision ${result.summary.revision}, ${result.summary.keyCount} keys) into ${dataDir} for member ${name} (${formatId(result.memberId)}) ` +
        `of a new cluster of ${result.members.length}: ${result.members.map((member) => member.name).join(',')}`,
    );
    return 0;
  } catch (error) {
    if (error instanceof SnapshotUsageError || error instanceof InitialClusterError) {
      err(`mast snapshot: ${error.message}`);
      return 2;
    }
    if (error instanceof SnapshotRestoreError) {
      err(`mast snapshot: ${error.message}`);
      return 1;
    }
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      err(`mast snapshot: ${(error as Error).message}`);
      return 1;
    }
    throw error;
  }
}
