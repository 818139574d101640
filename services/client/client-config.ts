// Where a client finds the masters and its credentials, for mastctl and for
// the standalone scheduler and controller-manager: explicit settings (flags)
// first, then $MAST_MASTERS, then the config file ($MASTCONFIG or
// ~/.mast/config, YAML: masters, certificateAuthority, clientCertificate,
// clientKey, token — relative paths are relative to the file; `mast init`
// writes one). https:// masters get TLS credentials; a token rides on
// every call as "authorization: Bearer ...".

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parse as parseYaml } from 'yaml';

export class ClientConfigError extends Error {
  override readonly name = 'ClientConfigError';
}

/** What the user gave explicitly (kubectl's flag names in comments). */
export interface ClientSettings {
  /** --server: URL[,URL...] */
  readonly server?: string;
  /** --certificate-authority */
  readonly certificateAuthority?: string;
  /** --client-certificate */
  readonly clientCertificate?: string;
  /** --client-key */
  readonly clientKey?: string;
  /** --token */
  readonly token?: string;
  /** --kubeconfig: the config file to read instead of $MASTCONFIG or ~/.mast/config. */
  readonly configFile?: string;
}

export interface ClientConfig {
  readonly masters: string[];
  /** Absent for plain-http masters. */
  readonly credentials?: grpc.ChannelCredentials;
}

/** The flags every component takes for its masters, as node:util parseArgs options (kubectl's names). */
export const CLIENT_FLAG_OPTIONS = {
  server: { type: 'string' },
  kubeconfig: { type: 'string' },
  'certificate-authority': { type: 'string' },
  'client-certificate': { type: 'string' },
  'client-key': { type: 'string' },
  token: { type: 'string' },
} as const;

/** ClientSettings from parsed CLIENT_FLAG_OPTIONS values (absent flags stay absent). */
export function clientSettingsFromFlags(values: { readonly [K in keyof typeof CLIENT_FLAG_OPTIONS]?: string | undefined }): ClientSettings {
  const settings: { -readonly [K in keyof ClientSettings]: ClientSettings[K] } = {};
  if (values.server !== undefined) settings.server = values.server;
  if (values.kubeconfig !== undefined) settings.configFile = values.kubeconfig;
  if (values['certificate-authority'] !== undefined) settings.certificateAuthority = values['certificate-authority'];
  if (values['client-certificate'] !== undefined) settings.clientCertificate = values['client-certificate'];
  if (values['client-key'] !== undefined) settings.clientKey = values['client-key'];
  if (values.token !== undefined) settings.token = values.token;
  return settings;
}

/** The config file a client reads: --kubeconfig, else $MASTCONFIG, else ~/.mast/config. */
export function configFilePath(settings: ClientSettings, env: Readonly<Record<string, string | undefined>>): string {
  return settings.configFile ?? env.MASTCONFIG ?? join(env.HOME ?? homedir(), '.mast', 'config');
}

export function loadClientConfig(settings: ClientSettings, env: Readonly<Record<string, string | undefined>>): ClientConfig {
  const list = (text: string): string[] => text.split(',').map((part) => part.trim()).filter((part) => part !== '');
  const path = configFilePath(settings, env);
  if (settings.configFile !== undefined && !existsSync(path)) throw new ClientConfigError(`config file ${path} does not exist`);
  let file: Record<string, unknown> = {};
  if (existsSync(path)) {
    const parsedFile = parseYaml(readFileSync(path, 'utf8')) as unknown;
    if (parsedFile !== null && (typeof parsedFile !== 'object' || Array.isArray(parsedFile))) throw new ClientConfigError(`${path}: expected a YAML mapping with "masters:"`);
    file = (parsedFile ?? {}) as Record<string, unknown>;
  }
  const fromFile = (key: string): string | undefined => {
    const value = file[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') throw new ClientConfigError(`${path}: "${key}" must be a string`);
    return value;
  };
  const filePath = (key: string): string | undefined => {
    const value = fromFile(key);
    return value === undefined ? undefined : resolve(dirname(path), value);
  };
  let masters: string[];
  if (settings.server !== undefined) masters = list(settings.server);
  else if (env.MAST_MASTERS !== undefined && env.MAST_MASTERS !== '') masters = list(env.MAST_MASTERS);
  else {
    if (!existsSync(path)) throw new ClientConfigError(`no masters given: use --server URL[,URL...], set MAST_MASTERS, or write ${path} (masters: [URL, ...])`);
    if (!Array.isArray(file.masters) || file.masters.length === 0) throw new ClientConfigError(`${path}: expected "masters:" with a list of URLs`);
    masters = file.masters.map(String);
  }
  if (masters.length === 0) throw new ClientConfigError('no masters given: --server is empty');
  const caFile = settings.certificateAuthority ?? filePath('certificateAuthority');
  const certFile = settings.clientCertificate ?? filePath('clientCertificate');
  const keyFile = settings.clientKey ?? filePath('clientKey');
  const token = settings.token ?? fromFile('token');
  if (!masters.some((url) => url.startsWith('https://'))) return { masters };
  if ((certFile === undefined) !== (keyFile === undefined)) throw new ClientConfigError('a client certificate needs both --client-certificate and --client-key (clientCertificate and clientKey in the config)');
  const read = (name: string): Buffer => {
    try {
      return readFileSync(name);
    } catch (error) {
      throw new ClientConfigError(`cannot read ${name}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  };
  let credentials = grpc.credentials.createSsl(caFile === undefined ? null : read(caFile), keyFile === undefined ? null : read(keyFile), certFile === undefined ? null : read(certFile));
  if (token !== undefined) {
    credentials = grpc.credentials.combineChannelCredentials(
      credentials,
      grpc.credentials.createFromMetadataGenerator((_, callback) => {
        const metadata = new grpc.Metadata();
        metadata.set('authorization', `Bearer ${token}`);
        callback(null, metadata);
      }),
    );
  }
  return { masters, credentials };
}
