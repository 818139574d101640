#!/usr/bin/env node
// The `mastctl` bin: see services/ctl/mastctl.ts.
import { readFileSync } from 'node:fs';
import { runCtl } from '../ctl/mastctl.js';

const code = await runCtl(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  readStdin: () => readFileSync(0, 'utf8'),
  env: process.env,
  now: () => new Date(),
  interrupted: new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  }),
});
process.exitCode = code;
