// nftables through its own library (libnftables.so.1, which the nft command
// is a thin wrapper of), called in-process with koffi: the same text, parser
// and kernel transaction as `nft -f -`, without starting a process (and its
// dynamic loading) for each apply. On this machine a one-backend change to a
// table of 1,000 Services goes from ~30 ms through nft to ~7 ms. Calls run on
// a libuv worker thread, one at a time, so a full sync does not block the
// event loop.
//
// A context's netlink socket belongs to the network namespace current when
// the context is made: for a namespace (tests, benchmarks), this thread
// enters it for that one call and returns at once.

import { closeSync, openSync } from 'node:fs';
import koffi, { type LibraryHandle } from 'koffi';

const CLONE_NEWNET = 0x40000000;

interface Library {
  readonly newContext: (flags: number) => unknown;
  readonly freeContext: (context: unknown) => void;
  readonly bufferError: (context: unknown) => number;
  readonly bufferOutput: (context: unknown) => number;
  readonly errorBuffer: (context: unknown) => string | null;
  readonly run: ReturnType<LibraryHandle['func']>;
  readonly setns: (fd: number, type: number) => number;
}

let library: Library | undefined | null;

function load(): Library | undefined {
  if (library === null) return undefined;
  if (library !== undefined) return library;
  try {
    const nftables = koffi.load('libnftables.so.1');
    const libc = koffi.load('libc.so.6');
    library = {
      newContext: nftables.func('void *nft_ctx_new(uint32_t flags)') as (flags: number) => unknown,
      freeContext: nftables.func('void nft_ctx_free(void *ctx)') as (context: unknown) => void,
      bufferError: nftables.func('int nft_ctx_buffer_error(void *ctx)') as (context: unknown) => number,
      bufferOutput: nftables.func('int nft_ctx_buffer_output(void *ctx)') as (context: unknown) => number,
      errorBuffer: nftables.func('const char *nft_ctx_get_error_buffer(void *ctx)') as (context: unknown) => string | null,
      run: nftables.func('int nft_run_cmd_from_buffer(void *ctx, const char *buf)'),
      setns: libc.func('int setns(int fd, int nstype)') as (fd: number, type: number) => number,
    };
    return library;
  } catch {
    library = null;
    return undefined;
  }
}

/** libnftables refused a command: its error text (what nft prints on stderr). */
export class LibNftablesError extends Error {
  override readonly name = 'LibNftablesError';
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

export class LibNftables {
  private closed = false;
  /** Calls run one at a time: a context is not safe to share between threads. */
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly lib: Library,
    private readonly context: unknown,
  ) {}

  /** A context in this process's network namespace, or in /run/netns/NAME; undefined when the library is not installed. */
  static open(netns?: string): LibNftables | undefined {
    const lib = load();
    if (lib === undefined) return undefined;
    let context: unknown;
    if (netns === undefined) {
      context = lib.newContext(0);
    } else {
      const own = openSync('/proc/thread-self/ns/net', 'r');
      const target = openSync(`/run/netns/${netns}`, 'r');
      try {
        if (lib.setns(target, CLONE_NEWNET) !== 0) throw new Error(`cannot enter network namespace ${netns} (setns failed)`);
        try {
          context = lib.newContext(0);
        } finally {
          if (lib.setns(own, CLONE_NEWNET) !== 0) throw new Error('cannot return to this process\'s network namespace after making an nftables context');
        }
      } finally {
        closeSync(own);
        closeSync(target);
      }
    }
    if (context === null) return undefined;
    lib.bufferError(context);
    lib.bufferOutput(context);
    return new LibNftables(lib, context);
  }

  /** Runs an nft file's text as one transaction. */
  run(text: string): Promise<void> {
    const result = this.tail.then(() => this.runNow(text));
    this.tail = result.catch(() => {});
    return result;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.tail.then(() => this.lib.freeContext(this.context));
  }

  private runNow(text: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the nftables context is closed'));
    return new Promise((resolve, reject) => {
      this.lib.run.async(this.context, text, (error: unknown, code: number) => {
        if (error !== null && error !== undefined) {
          reject(new LibNftablesError(`libnftables: ${String(error)}`, ''));
          return;
        }
        if (code === 0) {
          resolve();
          return;
        }
        const stderr = (this.lib.errorBuffer(this.context) ?? '').trim();
        reject(new LibNftablesError(`nft -f failed: ${stderr.slice(0, 4000)}`, stderr));
      });
    });
  }
}
