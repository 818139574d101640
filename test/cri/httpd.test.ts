// The built-in httpd and nginx images: a static HTTP server on the pod's
// own IP, so two pods serve the same port side by side.

import { expect } from 'chai';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runContainer, startHarness, waitFor, type Harness } from './harness.js';

function get(host: string, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const call = request({ host, port, path, timeout: 5000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    call.on('timeout', () => call.destroy(new Error('timeout')));
    call.on('error', reject);
    call.end();
  });
}

/** A port nothing listens on, on any address. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '0.0.0.0', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describe('mast cri: the built-in httpd and nginx images', function () {
  this.timeout(60_000);
  let harness: Harness;

  before(async function () {
    harness = await startHarness({ podCidr: '127.31.0.0/16' });
  });

  after(async function () {
    await harness?.destroy();
  });

  it('serves "It works!" and files on the pod IP and port, logging each request; two pods share a port', async function () {
    const port = await freePort();
    const web = await runContainer(harness, 'web', { image: { image: 'httpd:2.4' }, envs: [{ key: 'PORT', value: String(port) }] });
    const html = join(harness.dir, 'html');
    mkdirSync(html, { recursive: true });
    writeFileSync(join(html, 'hello.txt'), 'hello from a volume\n');
    const nginx = await runContainer(harness, 'nginx', {
      image: { image: 'nginx' },
      args: ['nginx', '-g', 'daemon off;', '--port', String(port)],
      mounts: [{ containerPath: '/usr/share/nginx/html', hostPath: html }],
    });
    const ipOf = async (sandboxId: string): Promise<string> => (await harness.runtime.podSandboxStatus({ podSandboxId: sandboxId })).status?.network?.ip as string;
    const webIp = await ipOf(web.sandboxId);
    const nginxIp = await ipOf(nginx.sandboxId);
    expect(webIp).to.not.equal(nginxIp);

    const index = await waitFor('httpd answering', () => get(webIp, port, '/').catch(() => undefined));
    expect(index).to.deep.equal({ status: 200, body: '<html><body><h1>It works!</h1></body></html>\n' });
    expect((await get(webIp, port, '/missing')).status).to.equal(404);
    const file = await waitFor('nginx answering', () => get(nginxIp, port, '/hello.txt').catch(() => undefined));
    expect(file).to.deep.equal({ status: 200, body: 'hello from a volume\n' });
    await waitFor('the request in the log', () => (readFileSync(web.logPath, 'utf8').includes('"GET / HTTP/1.1" 200') ? true : undefined));

    await harness.runtime.stopContainer({ containerId: web.containerId, timeout: 10 });
    expect((await harness.runtime.containerStatus({ containerId: web.containerId })).status?.exitCode).to.equal(0);
  });
});
