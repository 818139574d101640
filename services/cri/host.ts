// The host as mast cri's containers see it: its busybox (and applets), its
// PATH, and where the built-in image scripts were compiled to.

import { execFileSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostLookup } from './commands.js';
import type { BuiltinPrograms } from './images.js';

const BUSYBOX_PATHS = ['/usr/bin/busybox', '/bin/busybox'];
export const DEFAULT_SEARCH_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function lookPath(name: string, searchPath: string): string | undefined {
  for (const directory of searchPath.split(delimiter)) {
    if (directory === '') continue;
    const candidate = join(directory, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function busyboxApplets(path: string): Set<string> {
  try {
    const listing = execFileSync(path, ['--list'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    return new Set(listing.split('\n').filter((name) => name !== ''));
  } catch {
    return new Set();
  }
}

/** The real host: its busybox is found once, here. */
export function detectHost(): HostLookup {
  const busyboxPath = BUSYBOX_PATHS.find(isExecutable);
  const applets = busyboxPath === undefined ? new Set<string>() : busyboxApplets(busyboxPath);
  return {
    busyboxPath: applets.size > 0 ? busyboxPath : undefined,
    busyboxApplets: applets,
    isExecutable,
    lookPath,
  };
}

/** The host's PATH, the one containers get unless their config sets PATH. */
export function hostSearchPath(): string {
  return process.env.PATH ?? DEFAULT_SEARCH_PATH;
}

/** Node and the built-in image scripts, next to this compiled module (works from any dist dir). */
export function builtinPrograms(): BuiltinPrograms {
  return {
    node: process.execPath,
    httpdScript: fileURLToPath(new URL('./images/httpd.js', import.meta.url)),
    pauseScript: fileURLToPath(new URL('./images/pause.js', import.meta.url)),
  };
}
