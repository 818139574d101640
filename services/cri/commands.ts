// What a container's command becomes on the host: the pod's command and
// args merged with the image's entrypoint and default args (as containerd
// merges them with an image's ENTRYPOINT and CMD), then the program looked
// up: the container's own files first, then the image's programs, the
// host's busybox applets, and the host PATH. Pure, given a HostLookup.

import { basename, join, posix } from 'node:path';
import type { ImageEntry } from './images.js';

/** What the host offers; host.ts reads the real one. */
export interface HostLookup {
  /** Path of the host's busybox, if it has one. */
  readonly busyboxPath: string | undefined;
  readonly busyboxApplets: ReadonlySet<string>;
  isExecutable(path: string): boolean;
  /** The first executable `name` in the colon-separated `searchPath`. */
  lookPath(name: string, searchPath: string): string | undefined;
}

export interface CommandContext {
  /** Host directory standing for the container's /. */
  readonly rootfs: string;
  /** Host directory the process starts in. */
  readonly cwd: string;
  /** PATH the program is looked up in. */
  readonly searchPath: string;
}

export class CommandError extends Error {
  override readonly name = 'CommandError';

  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export interface MergedCommand {
  readonly argv: readonly string[];
  /** Which request field the program came from, for error messages. */
  readonly field: string;
}

/** The command line a container runs, before its program is looked up on the host. */
export function mergeCommand(image: ImageEntry, command: readonly string[], args: readonly string[]): MergedCommand {
  if (command.length > 0) return { argv: [...command, ...args], field: 'config.command' };
  const argv = [...image.command, ...(args.length > 0 ? args : image.defaultArgs)];
  if (argv.length === 0) {
    throw new CommandError('config.command', `image ${image.name} has no default command: the container must give a command`);
  }
  return { argv, field: image.command.length > 0 ? `image ${image.name} command` : args.length > 0 ? 'config.args' : `image ${image.name} default args` };
}

/** argv with its program replaced by what runs it on the host. */
export function resolveArgv(image: ImageEntry, argv: readonly string[], context: CommandContext, host: HostLookup, field: string): string[] {
  const [program, ...rest] = argv;
  if (program === undefined || program === '') throw new CommandError(field, 'empty program name');
  if (program.includes('/')) {
    const inside = program.startsWith('/') ? join(context.rootfs, posix.normalize(program)) : join(context.cwd, program);
    if (host.isExecutable(inside)) return [inside, ...rest];
  }
  const name = basename(program);
  const mapped = image.programs[program] ?? image.programs[name];
  if (mapped !== undefined) return [...resolveArgv({ ...image, programs: {} }, mapped, context, host, `image ${image.name} programs.${name}`), ...rest];
  if (image.applets && host.busyboxPath !== undefined && host.busyboxApplets.has(name)) return [host.busyboxPath, name, ...rest];
  if (program.startsWith('/') && host.isExecutable(program)) return [program, ...rest];
  const found = host.lookPath(name, context.searchPath);
  if (found !== undefined) return [found, ...rest];
  const tried = [
    program.includes('/') ? `not in the container's files ($MAST_ROOTFS)` : undefined,
    `not a program of image ${image.name}`,
    image.applets ? (host.busyboxPath === undefined ? 'no busybox on the host' : 'not a busybox applet') : undefined,
    `not on the host PATH (${context.searchPath})`,
  ].filter((part) => part !== undefined);
  throw new CommandError(field, `"${program}" not found: ${tried.join(', ')}`);
}
