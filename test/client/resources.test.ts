// The resource client over several masters: a master that does not answer
// (stopped, cut off) costs one timeout, then is passed over for a while
// instead of taking every other call.

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import * as api from '../../proto/gen/api.js';
import { ResourceClient } from '../../services/client/resources.js';

/** A Resources server that answers Get with an empty Namespace, or never (silent), counting calls. */
async function server(silent: boolean): Promise<{ port: number; calls: () => number; close: () => void }> {
  let calls = 0;
  const impl = {
    get: (_call: unknown, callback: grpc.sendUnaryData<api.ObjectResponse>) => {
      calls++;
      if (!silent) callback(null, api.ObjectResponse.fromPartial({ object: Buffer.from(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } })) }));
    },
  };
  const grpcServer = new grpc.Server();
  grpcServer.addService(api.ResourcesService, impl as unknown as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error))));
  return { port, calls: () => calls, close: () => grpcServer.forceShutdown() };
}

describe('client: the resource client over several masters', function () {
  it('passes over a master that timed out, for a while, instead of round-robin into it again', async function () {
    const silent = await server(true);
    const healthy = await server(false);
    const client = new ResourceClient({ endpoints: [`127.0.0.1:${silent.port}`, `127.0.0.1:${healthy.port}`], timeoutMs: 300 });
    try {
      for (let index = 0; index < 10; index++) {
        const namespace = await client.get('Namespace', '', 'default');
        expect(namespace.metadata?.name).to.equal('default');
      }
      // Round robin alone would have sent it 5 of the 10 (each a timeout and a retry elsewhere).
      expect(silent.calls()).to.equal(1);
      expect(healthy.calls()).to.equal(10);
    } finally {
      client.close();
      silent.close();
      healthy.close();
    }
  });
});
