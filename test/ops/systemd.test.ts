// The systemd units in ops/systemd: systemd itself parses them (when
// systemd-analyze is installed), and they read the environment files
// `mast init` and `mast join` write, by the variable those files set.

import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const UNITS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../ops/systemd');

function hasSystemdAnalyze(): boolean {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('ops/systemd units', function () {
  it('start mast master and mast agent with the flags of the environment files mast init and mast join write', function () {
    const master = readFileSync(join(UNITS, 'mast-master@.service'), 'utf8');
    expect(master).to.match(/^EnvironmentFile=\/etc\/mast\/%i\.env$/m);
    expect(master).to.match(/^ExecStart=\/usr\/bin\/env mast master \$MAST_MASTER_FLAGS$/m);
    const agent = readFileSync(join(UNITS, 'mast-agent.service'), 'utf8');
    expect(agent).to.match(/^EnvironmentFile=\/etc\/mast\/agent\.env$/m);
    expect(agent).to.match(/^ExecStart=\/usr\/bin\/env mast agent --root-dir \/var\/lib\/mast-agent \$MAST_AGENT_FLAGS$/m);
    // The writers use the same variable names (services/cmd/init.ts, services/cmd/join.ts).
    const sources = ['init.ts', 'join.ts'].map((file) => readFileSync(resolve(UNITS, '../../services/cmd', file), 'utf8')).join('\n');
    expect(sources).to.include('MAST_MASTER_FLAGS=');
    expect(sources).to.include('MAST_AGENT_FLAGS=');
  });

  it('parse cleanly with systemd-analyze verify', function () {
    if (!hasSystemdAnalyze()) this.skip();
    const scratch = mkdtempSync(join(tmpdir(), 'mast-units-'));
    try {
      // An instance of the template, as systemctl would make it.
      copyFileSync(join(UNITS, 'mast-master@.service'), join(scratch, 'mast-master@m1.service'));
      copyFileSync(join(UNITS, 'mast-agent.service'), join(scratch, 'mast-agent.service'));
      const result = spawnSync('systemd-analyze', ['verify', join(scratch, 'mast-master@m1.service'), join(scratch, 'mast-agent.service')], { encoding: 'utf8' });
      expect(result.status, result.stderr).to.equal(0);
      expect(`${result.stdout}${result.stderr}`.trim()).to.equal('');
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
