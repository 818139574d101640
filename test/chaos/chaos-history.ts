// The key-value workload's history as the linearizability checker takes it:
// every operation with its invoke and completion times (performance.now()
// milliseconds) and its outcome, plus the revision each acknowledged write
// committed at (for the acknowledged-writes check).

import type { Operation } from './linearizability.js';

/** How a failed call ends up in the history. */
export type Outcome = 'failed' | 'indeterminate';

/**
 * Whether a failed call certainly took no effect. Conservative: only a call
 * that never reached any master (grpc-js could not connect: the request was
 * never sent) is failed for sure; a deadline, a lost connection, or any
 * answer of the cluster's own (it may have been proposed before it failed)
 * is indeterminate.
 */
export function classifyError(error: unknown): Outcome {
  const details = String((error as { details?: unknown } | undefined)?.details ?? '');
  if (/^No connection established/.test(details) || /connect ECONNREFUSED/.test(details)) return 'failed';
  return 'indeterminate';
}

interface Pending {
  readonly id: number;
  readonly client: number;
  readonly key: string;
  readonly invokeMs: number;
  readonly kind: 'put' | 'get' | 'cas';
  readonly value?: string;
  readonly expected?: string | null;
  completeMs?: number;
  outcome?: { ok: true; value?: string | null; succeeded?: boolean } | { ok: false };
  revision?: number;
}

/** An acknowledged write (a put, or a cas that succeeded) and the revision it committed at. */
export interface AckedWrite {
  readonly id: number;
  readonly key: string;
  readonly value: string;
  readonly revision: number;
  readonly completeMs: number;
}

export type Invocation = { readonly kind: 'put'; readonly value: string } | { readonly kind: 'get' } | { readonly kind: 'cas'; readonly expected: string | null; readonly value: string };

export class History {
  private readonly records: Pending[] = [];

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Record the call; the returned handle records how it ended (at most once). */
  invoke(client: number, key: string, call: Invocation): { ok(result: { value?: string | null; succeeded?: boolean; revision?: number }): void; fail(outcome: Outcome): void } {
    const record: Pending = { id: this.records.length, client, key, invokeMs: this.now(), ...call };
    this.records.push(record);
    let done = false;
    return {
      ok: (result) => {
        if (done) throw new Error(`operation ${record.id} completed twice`);
        done = true;
        record.completeMs = this.now();
        record.outcome = { ok: true, value: result.value, succeeded: result.succeeded };
        record.revision = result.revision;
      },
      fail: (outcome) => {
        if (done) throw new Error(`operation ${record.id} completed twice`);
        done = true;
        record.completeMs = this.now();
        if (outcome === 'failed') record.outcome = { ok: false };
      },
    };
  }

  get size(): number {
    return this.records.length;
  }

  /** The history for checkHistory. Operations still in flight are indeterminate. */
  operations(): Operation[] {
    return this.records.map((record): Operation => {
      const base = { id: record.id, client: record.client, key: record.key, invokeMs: record.invokeMs, completeMs: record.completeMs };
      const outcome = record.outcome;
      switch (record.kind) {
        case 'put':
          return { ...base, kind: 'put', value: record.value!, ...(outcome === undefined ? {} : { result: outcome.ok ? { ok: true } : { ok: false } }) };
        case 'get':
          return { ...base, kind: 'get', ...(outcome === undefined ? {} : { result: outcome.ok ? { ok: true, value: outcome.value ?? null } : { ok: false } }) };
        case 'cas':
          return { ...base, kind: 'cas', expected: record.expected ?? null, value: record.value!, ...(outcome === undefined ? {} : { result: outcome.ok ? { ok: true, succeeded: outcome.succeeded === true } : { ok: false } }) };
      }
    });
  }

  /** Every acknowledged write with its commit revision. */
  ackedWrites(): AckedWrite[] {
    return this.records.flatMap((record) => {
      const outcome = record.outcome;
      if (outcome?.ok !== true || record.kind === 'get' || (record.kind === 'cas' && outcome.succeeded !== true)) return [];
      if (record.revision === undefined) throw new Error(`acknowledged write ${record.id} has no revision`);
      return [{ id: record.id, key: record.key, value: record.value!, revision: record.revision, completeMs: record.completeMs! }];
    });
  }

  /** Counts: ok (answered), failed for sure, indeterminate. */
  counts(): { ok: number; failed: number; indeterminate: number } {
    let ok = 0;
    let failed = 0;
    for (const record of this.records) {
      if (record.outcome?.ok === true) ok++;
      else if (record.outcome?.ok === false) failed++;
    }
    return { ok, failed, indeterminate: this.records.length - ok - failed };
  }

  /**
   * Write failover: from `atMs` to the first acknowledged write invoked at or
   * after it (undefined: none).
   */
  writeResumeMs(atMs: number): number | undefined {
    let best: number | undefined;
    for (const record of this.records) {
      if (record.kind === 'get' || record.outcome?.ok !== true || record.invokeMs < atMs) continue;
      const took = record.completeMs! - atMs;
      if (best === undefined || took < best) best = took;
    }
    return best;
  }
}
