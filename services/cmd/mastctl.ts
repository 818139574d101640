#!/usr/bin/env node
// The `mastctl` bin: see services/ctl/mastctl.ts.
import { readFileSync } from 'node:fs';
import { runCtl } from '../ctl/mastctl.js';

// grpc-js names the server by IP when masters are given by IP, which Node
// reports as DEP0123 on every connection; the certificate is still checked
// against the IP SAN. A user of the command line has nothing to act on there.
process.noDeprecation = true;

const code = await runCtl(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  write: (chunk, stream) => (stream === 'stderr' ? process.stderr : process.stdout).write(chunk),
  readStdin: () => readFileSync(0, 'utf8'),
  env: process.env,
  now: () => new Date(),
  interrupted: new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  }),
});
process.exitCode = code;
