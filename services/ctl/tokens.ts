// `mastctl token create|list|delete`: join tokens (kubeadm's bootstrap
// tokens: Secrets kube-system/bootstrap-token-ID, see
// services/pki/bootstrap-tokens.ts). `create` prints the token and the
// `mast join` command with the CA pin, read from the masters' Join service
// over this client's already trusted connection.

import * as grpc from '@grpc/grpc-js';
import * as joinProto from '../../proto/gen/join.js';
import type { ResourceClient, KubeObject } from '../client/resources.js';
import { formatTable } from './printers.js';
import {
  BOOTSTRAP_TOKEN_NAMESPACE,
  BOOTSTRAP_TOKEN_TYPE,
  bootstrapTokenSecret,
  bootstrapTokenSecretName,
  caCertificateHash,
  formatBootstrapToken,
  joinRoleOf,
  newBootstrapToken,
  parseBootstrapToken,
  parseTokenTtl,
  readBootstrapTokenSecret,
  type JoinRole,
} from '../pki/index.js';

export class TokenUsageError extends Error {
  override readonly name = 'TokenUsageError';
}

export const TOKEN_USAGE = `usage: mastctl token create [--for node|master] [--ttl 24h] [--description TEXT]
       mastctl token list
       mastctl token delete ID|ID.SECRET...`;

export interface TokenCommand {
  readonly verb: string;
  readonly args: readonly string[];
  readonly flag: (name: string) => string | undefined;
  readonly masters: readonly string[];
  readonly credentials: grpc.ChannelCredentials | undefined;
  readonly now: () => Date;
  readonly out: (line: string) => void;
}

const DEFAULT_TTL_MS = 24 * 3_600_000;

/** The cluster CA's pin, from the first master that answers. */
async function caHashFrom(masters: readonly string[], credentials: grpc.ChannelCredentials | undefined): Promise<string> {
  let lastError: unknown;
  for (const master of masters) {
    if (!master.startsWith('https://')) throw new TokenUsageError(`${master} serves plain http: join tokens are for secured clusters (mast init)`);
    const client = new joinProto.JoinClient(master.replace(/^https:\/\//, '').replace(/\/$/, ''), credentials ?? grpc.credentials.createSsl());
    try {
      const info = await new Promise<joinProto.ClusterInfoResponse>((resolve, reject) => {
        client.clusterInfo({}, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (error, response) => (error === null ? resolve(response) : reject(error)));
      });
      return caCertificateHash(info.caCertificate);
    } catch (error) {
      lastError = error;
    } finally {
      client.close();
    }
  }
  throw lastError;
}

function ttlText(expiresAtMs: number | undefined, nowMs: number): string {
  if (expiresAtMs === undefined) return '<forever>';
  const left = expiresAtMs - nowMs;
  if (left <= 0) return '<expired>';
  const hours = Math.floor(left / 3_600_000);
  const minutes = Math.floor((left % 3_600_000) / 60_000);
  return hours > 0 ? `${hours}h${minutes}m` : minutes > 0 ? `${minutes}m` : `${Math.ceil(left / 1000)}s`;
}

export async function runToken(client: ResourceClient, command: TokenCommand): Promise<void> {
  switch (command.verb) {
    case 'create': {
      if (command.args.length > 0) throw new TokenUsageError(`mastctl token create takes no arguments (got ${command.args.join(' ')})\n${TOKEN_USAGE}`);
      const role = (command.flag('for') ?? 'node') as JoinRole;
      if (role !== 'node' && role !== 'master') throw new TokenUsageError(`--for ${JSON.stringify(role)}: a token is for joining a node or a master`);
      const ttlFlag = command.flag('ttl');
      const ttlMs = ttlFlag === undefined ? DEFAULT_TTL_MS : parseTokenTtl(ttlFlag);
      if (ttlMs === undefined) throw new TokenUsageError(`--ttl ${JSON.stringify(ttlFlag)} is not a duration such as 24h, 30m, 90s or 0 (never expires)`);
      const token = newBootstrapToken();
      const description = command.flag('description');
      const secret = bootstrapTokenSecret(token, { role, ...(ttlMs === 0 ? {} : { expiresAtMs: command.now().getTime() + ttlMs }), ...(description === undefined ? {} : { description }) });
      const caHash = await caHashFrom(command.masters, command.credentials);
      await client.create('Secret', secret as KubeObject);
      const text = formatBootstrapToken(token);
      command.out(text);
      const joinFlags = `--server ${command.masters[0]} --token ${text} --discovery-token-ca-cert-hash ${caHash}`;
      command.out(role === 'node' ? `join a node with: mast join node ${joinFlags} [--node-name NAME]` : `join a master with: mast join master ${joinFlags} --name NAME --host HOST`);
      return;
    }
    case 'list': {
      if (command.args.length > 0) throw new TokenUsageError(`mastctl token list takes no arguments\n${TOKEN_USAGE}`);
      const secrets = await client.list('Secret', { namespace: BOOTSTRAP_TOKEN_NAMESPACE });
      const nowMs = command.now().getTime();
      const rows: Array<Record<string, string>> = [];
      for (const secret of secrets.items) {
        if ((secret as { type?: unknown }).type !== BOOTSTRAP_TOKEN_TYPE) continue;
        const record = readBootstrapTokenSecret(secret as Parameters<typeof readBootstrapTokenSecret>[0]);
        if (typeof record === 'string') {
          rows.push({ ID: String(secret.metadata?.name ?? ''), DESCRIPTION: `<invalid: ${record}>` });
          continue;
        }
        rows.push({
          ID: record.id,
          TTL: ttlText(record.expiresAtMs, nowMs),
          EXPIRES: record.expiresAtMs === undefined ? '<never>' : new Date(record.expiresAtMs).toISOString().replace(/\.\d{3}Z$/, 'Z'),
          FOR: joinRoleOf(record.groups) ?? '<none>',
          DESCRIPTION: record.description,
        });
      }
      if (rows.length === 0) {
        command.out('No join tokens (mastctl token create makes one).');
        return;
      }
      for (const line of formatTable(['ID', 'TTL', 'EXPIRES', 'FOR', 'DESCRIPTION'], rows).split('\n')) command.out(line);
      return;
    }
    case 'delete': {
      if (command.args.length === 0) throw new TokenUsageError(`mastctl token delete needs the ID of each token\n${TOKEN_USAGE}`);
      for (const argument of command.args) {
        const id = parseBootstrapToken(argument)?.id ?? argument;
        if (!/^[a-z0-9]{6}$/.test(id)) throw new TokenUsageError(`${JSON.stringify(argument)} is neither a token ID (6 characters of [a-z0-9]) nor a token`);
        await client.delete('Secret', BOOTSTRAP_TOKEN_NAMESPACE, bootstrapTokenSecretName(id));
        command.out(`join token ${id} deleted`);
      }
      return;
    }
    default:
      throw new TokenUsageError(TOKEN_USAGE);
  }
}
