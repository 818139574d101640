#!/usr/bin/env node
// `mast`: the server-side command. `mast master ...` runs one master;
// `mast init ...` writes a new cluster's CA, certificates and tokens;
// `mast join node|master` joins a machine to it with a join token;
// `mast scheduler` / `mast controller-manager` run those components alone;
// `mast agent` runs a node agent, `mast cri` the embedded CRI runtime;
// `mast up` (npm start) runs a whole local cluster.

import { FlagError, masterUsage, parseMasterFlags } from '../master/flags.js';
import { Master, jsonLogger } from '../master/master.js';
import { StorageCorruption } from '../../raft/storage/index.js';
import { InitialClusterError, StoreError } from '../store/index.js';
import { ClientConfigError } from '../client/client-config.js';
import { AgentFlagError } from '../agent/flags.js';

const USAGE = `usage: mast COMMAND [flags]

commands:
  master    run one master (a Raft member serving the etcd v3 API); mast master --help
  init      write a new cluster's CA, certificates, tokens and mastctl config; mast init --help
  join      join this machine to a secured cluster as a node or a master, with a join token; mast join --help
  scheduler           run a leader-elected scheduler as a client of the masters; mast scheduler --help
  controller-manager  run a leader-elected controller-manager as a client of the masters; mast controller-manager --help
  agent     run a node agent: registers the Node and runs the pods bound to it through CRI; mast agent --help
  cri       run the embedded CRI v1 runtime (containers as host processes, no root); mast cri --help
  up        run a local cluster (3 masters, 2 nodes, Services) until Ctrl-C, and point mastctl at it; mast up --help
  snapshot  restore a snapshot (from mastctl snapshot save) into a new cluster's data dirs; mast snapshot --help
`;

async function runMaster(argv: readonly string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${masterUsage()}\n`);
    return;
  }
  const flags = parseMasterFlags(argv);
  const logger = jsonLogger(flags.name, flags.logLevel);
  const master = await Master.start(flags, (error) => {
    logger.error(`fatal: ${error.message}`);
    process.exit(1);
  });
  const shutdown = (signal: string): void => {
    logger.info(`received ${signal}, shutting down`);
    // Never take longer than a second, whatever is stuck.
    setTimeout(() => process.exit(0), 900).unref();
    void master.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

async function main(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'master':
      await runMaster(rest);
      return;
    case 'scheduler':
    case 'controller-manager': {
      const { runComponent } = await import('./component.js');
      await runComponent(command, rest);
      return;
    }
    case 'agent': {
      const { runAgentCommand } = await import('./agent.js');
      await runAgentCommand(rest);
      return;
    }
    case 'cri': {
      const { runCriCommand } = await import('../cri/main.js');
      const { jsonLogger } = await import('../client/log.js');
      process.exitCode = await runCriCommand(rest, (level) => jsonLogger('cri', level));
      return;
    }
    case 'up': {
      const { runUp } = await import('./up.js');
      await runUp(rest);
      return;
    }
    case 'snapshot': {
      const { runSnapshotCommand } = await import('./snapshot.js');
      process.exitCode = await runSnapshotCommand(
        rest,
        (line) => process.stdout.write(`${line}\n`),
        (line) => process.stderr.write(`${line}\n`),
      );
      return;
    }
    case 'join': {
      const { runJoin, JoinError } = await import('./join.js');
      const { hostname } = await import('node:os');
      try {
        await runJoin(rest, (line) => process.stdout.write(`${line}\n`), hostname);
      } catch (error) {
        if (!(error instanceof JoinError)) throw error;
        process.stderr.write(`mast join: ${error.message}\n`);
        process.exitCode = 1;
      }
      return;
    }
    case 'init': {
      // Loaded only here: `mast master` need not load the X.509 code.
      const { runInit } = await import('./init.js');
      await runInit(rest);
      return;
    }
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return;
    default:
      process.stderr.write(`mast: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof FlagError || error instanceof ClientConfigError || error instanceof AgentFlagError || error instanceof InitialClusterError || (error instanceof StoreError && error.code === 'invalid')) {
    process.stderr.write(`mast: ${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof StorageCorruption) {
    process.stderr.write(
      `mast: refusing to start: ${error.message}. This member will not serve data it cannot verify; ` +
        'remove it from the cluster (etcdctl member remove), clear its data dir and add it back to copy the state from the others.\n',
    );
    process.exit(1);
  }
  process.stderr.write(`mast: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
