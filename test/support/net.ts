// Network probes for end-to-end tests of Services: an HTTP GET on a fresh
// connection (so each request is balanced on its own), and how a TCP
// connection attempt ends.

import { get } from 'node:http';
import { connect } from 'node:net';

/** GET `url` on a new connection; rejects on a network error or after 3 s. */
export function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = get(url, { timeout: 3000, agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
  });
}

/**
 * How a TCP connection to host:port ends, and when: 'ECONNREFUSED' (rejected
 * by the kernel), 'ECONNRESET' or 'closed' (accepted, then dropped — what a
 * userspace proxy with no backend does), 'open' (still open after
 * `holdMs`), 'timeout' (no answer within `timeoutMs`), or another error code.
 */
export function connectOutcome(host: string, port: number, timeoutMs: number, holdMs = 1000): Promise<{ outcome: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let timer = setTimeout(() => done('timeout'), timeoutMs);
    function done(outcome: string): void {
      clearTimeout(timer);
      socket.destroy();
      resolve({ outcome, ms: performance.now() - started });
    }
    socket.once('error', (error: NodeJS.ErrnoException) => done(String(error.code)));
    socket.once('connect', () => {
      clearTimeout(timer);
      timer = setTimeout(() => done('open'), holdMs);
      socket.once('close', () => done('closed'));
    });
  });
}
