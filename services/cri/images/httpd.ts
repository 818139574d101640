// The built-in "httpd" and "nginx" images of mast cri: a small static file
// server. It listens on the pod's IP ($POD_IP, else every address) and on
// the port from $PORT, -p/--port N, or 80 (port 80 needs root: unprivileged
// users give a port). It serves the image's usual document root inside the
// container ($MAST_ROOTFS/usr/local/apache2/htdocs for httpd,
// $MAST_ROOTFS/usr/share/nginx/html for nginx) when something is mounted
// there, else its working directory; a directory without index.html at the
// root answers Apache's "It works!" page. Each request is logged on stdout
// in the common log format. Other arguments (nginx's -g 'daemon off;') are
// accepted and ignored.

import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { extname, join, normalize } from 'node:path';

const DOCUMENT_ROOTS: Readonly<Record<string, string>> = {
  httpd: 'usr/local/apache2/htdocs',
  nginx: 'usr/share/nginx/html',
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
};

const IT_WORKS = '<html><body><h1>It works!</h1></body></html>\n';

interface Options {
  readonly flavor: string;
  readonly port: number;
  readonly host: string | undefined;
}

function parseOptions(argv: readonly string[]): Options {
  let flavor = 'httpd';
  let port: string | undefined = process.env.PORT;
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index] ?? '';
    const value = argv[index + 1];
    if (argument === '--flavor' && value !== undefined) {
      flavor = value;
      index++;
    } else if ((argument === '-p' || argument === '--port') && value !== undefined) {
      port = value;
      index++;
    } else if (argument.startsWith('--port=')) {
      port = argument.slice('--port='.length);
    }
  }
  const parsed = Number(port ?? '80');
  if (!Number.isInteger(parsed) || parsed <= 0 || parsed > 65535) {
    process.stderr.write(`httpd: invalid port "${port}"\n`);
    process.exit(2);
  }
  const host = process.env.POD_IP;
  return { flavor, port: parsed, host: host === undefined || host === '' ? undefined : host };
}

function documentRoot(flavor: string): string {
  const rootfs = process.env.MAST_ROOTFS;
  const conventional = DOCUMENT_ROOTS[flavor];
  if (rootfs !== undefined && conventional !== undefined && existsSync(join(rootfs, conventional))) return join(rootfs, conventional);
  return process.cwd();
}

function logRequest(request: IncomingMessage, status: number, bytes: number): void {
  const when = new Date().toISOString();
  const line = `${request.socket.remoteAddress ?? '-'} - - [${when}] "${request.method ?? '-'} ${request.url ?? '-'} HTTP/${request.httpVersion}" ${status} ${bytes}`;
  process.stdout.write(`${line}\n`);
}

function send(request: IncomingMessage, response: ServerResponse, status: number, body: string, type = 'text/html; charset=utf-8'): void {
  const bytes = Buffer.byteLength(body);
  response.writeHead(status, { 'content-type': type, 'content-length': bytes });
  response.end(request.method === 'HEAD' ? undefined : body);
  logRequest(request, status, bytes);
}

function serve(root: string, request: IncomingMessage, response: ServerResponse): void {
  if (request.method !== 'GET' && request.method !== 'HEAD') return send(request, response, 405, 'method not allowed\n', 'text/plain');
  let path: string;
  try {
    path = decodeURIComponent(new URL(request.url ?? '/', 'http://localhost').pathname);
  } catch {
    return send(request, response, 400, 'bad request\n', 'text/plain');
  }
  const relative = normalize(`/${path}`).slice(1);
  let file = join(root, relative);
  try {
    if (statSync(file).isDirectory()) file = join(file, 'index.html');
    const stat = statSync(file);
    if (!stat.isFile()) throw new Error('not a file');
    response.writeHead(200, { 'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': stat.size });
    logRequest(request, 200, stat.size);
    if (request.method === 'HEAD') response.end();
    else createReadStream(file).on('error', () => response.destroy()).pipe(response);
  } catch {
    if (relative === '' || relative === 'index.html') return send(request, response, 200, IT_WORKS);
    send(request, response, 404, 'not found\n', 'text/plain');
  }
}

function main(): void {
  const options = parseOptions(process.argv.slice(2));
  const root = documentRoot(options.flavor);
  const server = createServer((request, response) => serve(root, request, response));
  server.on('error', (error: NodeJS.ErrnoException) => {
    const hint = error.code === 'EACCES' ? ' (ports below 1024 need root: set PORT or pass -p PORT)' : '';
    process.stderr.write(`${options.flavor}: cannot listen on ${options.host ?? '*'}:${options.port}: ${error.message}${hint}\n`);
    process.exit(1);
  });
  server.listen(options.port, options.host, () => {
    process.stdout.write(`${options.flavor} (mast cri built-in) serving ${root} on ${options.host ?? '*'}:${options.port}\n`);
  });
  const stop = (): void => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
