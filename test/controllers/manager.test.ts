// The controller-manager's warm standby: a waiting candidate keeps
// CONTROLLER_MANAGER_INFORMERS running; when it leads, its controllers must
// open no informer outside that set — one that did would start cold and
// list everything on the failover's critical path.

import { expect } from 'chai';
import type { ListerWatcher } from '../../services/client/informer.js';
import type { ResourceClient } from '../../services/client/resources.js';
import { SharedInformers } from '../../services/client/shared-informers.js';
import { waitFor } from '../../services/launcher/local-cluster.js';
import { CONTROLLER_MANAGER_INFORMERS, runControllerManager } from '../../services/controllers/manager.js';

/** An empty cluster: every list is empty, watches stay open and quiet. */
const empty: ListerWatcher = {
  list: async () => ({ items: [], resourceVersion: '1', continue: '' }),
  watch: () => () => {},
};

describe('controllers: the controller-manager on warm informers', function () {
  it('opens only the informers a waiting candidate keeps warm', async function () {
    const informers = new SharedInformers(empty);
    informers.warm(CONTROLLER_MANAGER_INFORMERS);
    const warm = informers.running();
    expect(warm).to.have.length(CONTROLLER_MANAGER_INFORMERS.length);
    const leadership = new AbortController();
    const logged: string[] = [];
    // Nothing exists, so nothing is written: the client is only ever read through the informers.
    const running = runControllerManager(empty as ResourceClient, leadership.signal, { log: (line) => logged.push(line), informers });
    try {
      await waitFor('the controllers to start', async () => (informers.running().length >= warm.length ? true : undefined), 10_000, 5);
      expect(informers.running()).to.deep.equal(warm);
    } finally {
      leadership.abort();
      await running;
      informers.stop();
    }
    expect(logged.filter((line) => /failed|error/i.test(line))).to.deep.equal([]);
  });
});
