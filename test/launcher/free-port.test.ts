// freePort() hands each port out once per process: the kernel offers a
// released port again readily (about 14 repeats in 500 draws here), and a
// chaos run once lost 120 s to a master's client port handed out again to
// the delay relay in front of a peer port.

import { expect } from 'chai';
import { createServer } from 'node:net';
import { freePort } from '../../services/launcher/local-cluster.js';

describe('freePort', function () {
  this.timeout(60_000);

  it('never hands out the same port twice in one process', async function () {
    const ports: number[] = [];
    for (let draw = 0; draw < 500; draw++) ports.push(await freePort());
    expect(new Set(ports).size).to.equal(ports.length);
  });

  it('gives a port that can be listened on at once', async function () {
    const port = await freePort();
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
