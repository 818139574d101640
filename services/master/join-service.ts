// The Join service (proto/join.proto) every master serves on its client
// URLs: ClusterInfo (no credentials: the CA and the masters, for a joiner
// that checks the CA against its pin), JoinNode and JoinMaster (a join
// token of the matching role, see services/pki/bootstrap-tokens.ts). The
// joiner's key never leaves its machine: it sends a PKCS#10 request and
// gets the certificate this master signs with the cluster CA key
// (--cluster-signing-key-file), with the names this service decides.

import type * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type * as join from '../../proto/gen/join.js';
import type { Access } from '../apiserver/access.js';
import { ApiError } from '../apiserver/registry.js';
import { statusOf } from '../apiserver/service.js';
import { unary } from '../etcdapi/index.js';
import type { WatchCache } from '../apiserver/watch-cache.js';
import { kindInfo, objectKey } from '../client/kinds.js';
import { EtcdConnection } from '../client/etcd.js';
import { CertificateError, JOIN_GROUPS, masterCertificateOptions, nodeCertificateOptions, signCertificateRequest, type KeyPairPem } from '../pki/index.js';
import type { ReplicatedStore } from '../store/store.js';

export interface JoinServiceOptions {
  readonly store: ReplicatedStore;
  readonly cache: WatchCache;
  readonly access: Access;
  /** PEM of the cluster CA ('' for a plain-http master: nothing to join with). */
  readonly caCertPem: string;
  /** PEM of the CA key ('' = this master cannot sign). */
  readonly caKeyPem: string;
  /** The token file (--token-auth-file) handed to joining masters ('' = none). */
  readonly tokenAuthFile: string;
  readonly initialClusterToken: string;
  /** This master's own client URL and credentials (membership changes go through it, forwarded to the leader). */
  readonly selfEndpoint: string;
  readonly selfCredentials: grpc.ChannelCredentials;
  readonly log: (line: string) => void;
}

const NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MEMBER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function mastersOf(store: ReplicatedStore): string[] {
  return store.stateMachine.members().flatMap((member) => [...member.clientUrls]);
}

/** The host of a URL, without an IPv6 address's brackets. */
function urlHost(url: string): string {
  return new URL(url).hostname.replace(/^\[|\]$/g, '');
}

function invalid(message: string): ApiError {
  return new ApiError('Invalid', message);
}

function checkUrl(label: string, url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(`${label} ${JSON.stringify(url)} is not a URL`);
  }
  if (parsed.protocol !== 'https:' || parsed.port === '' || parsed.pathname !== '/') throw invalid(`${label} ${JSON.stringify(url)} is not https://HOST:PORT (a secured cluster's masters speak TLS)`);
}

export function joinService(options: JoinServiceOptions): join.JoinServer {
  const signer = (): KeyPairPem => {
    if (options.caCertPem === '') throw new ApiError('BadRequest', 'this cluster serves plain http (--insecure): there is nothing to join with; point agents at the masters with --server');
    if (options.caKeyPem === '') throw new ApiError('BadRequest', 'this master cannot sign certificates: start it with --cluster-signing-key-file (mast init writes ca.key), or join through one that can');
    return { certPem: options.caCertPem, keyPem: options.caKeyPem };
  };
  const sign = async (requestPem: string, issue: Parameters<typeof signCertificateRequest>[2]): Promise<string> => {
    try {
      return await signCertificateRequest(signer(), requestPem, issue);
    } catch (error) {
      if (error instanceof CertificateError) throw invalid(error.message);
      throw error;
    }
  };
  const requireRole = (metadata: grpc.Metadata, role: keyof typeof JOIN_GROUPS): string => {
    const user = options.access.joinUser(metadata);
    if (!user.groups.includes(JOIN_GROUPS[role])) throw new ApiError('Forbidden', `join token ${user.name.split(':').pop()} is not for joining a ${role} (mastctl token create --for ${role})`);
    return user.name;
  };
  const handle = <Req, Res>(run: (request: Req, metadata: grpc.Metadata) => Promise<Res>): grpc.handleUnaryCall<Req, Res> => unary(run, statusOf);
  const nodes = kindInfo('Node')!;

  return {
    clusterInfo: handle(async (): Promise<join.ClusterInfoResponse> => {
      if (options.caCertPem === '') throw new ApiError('BadRequest', 'this cluster serves plain http (--insecure): there is no CA to join with');
      return { caCertificate: options.caCertPem, masters: mastersOf(options.store) };
    }),

    joinNode: handle(async (request: join.JoinNodeRequest, metadata): Promise<join.JoinNodeResponse> => {
      const user = requireRole(metadata, 'node');
      if (!NAME_PATTERN.test(request.nodeName) || request.nodeName.length > 253) throw invalid(`node name ${JSON.stringify(request.nodeName)} must be a DNS subdomain (lower-case letters, digits, '-' and '.')`);
      const node = options.cache.get(nodes, objectKey(nodes, '', request.nodeName))?.object;
      const conditions = (node?.status as { conditions?: Array<{ type?: string; status?: string }> } | undefined)?.conditions ?? [];
      if (conditions.some((condition) => condition.type === 'Ready' && condition.status === 'True')) {
        throw new ApiError('Conflict', `a Node named ${request.nodeName} already exists and is Ready: delete it first (mastctl delete node ${request.nodeName}) or join under another --node-name`);
      }
      const certificate = await sign(request.certificateRequest, nodeCertificateOptions(request.nodeName));
      options.log(`join: ${user} got a node certificate for ${request.nodeName}`);
      return { certificate, caCertificate: options.caCertPem, masters: mastersOf(options.store) };
    }),

    joinMaster: handle(async (request: join.JoinMasterRequest, metadata): Promise<join.JoinMasterResponse> => {
      const user = requireRole(metadata, 'master');
      if (!MEMBER_NAME_PATTERN.test(request.name)) throw invalid(`master name ${JSON.stringify(request.name)} must start with a letter or digit and hold only letters, digits, '.', '_' and '-'`);
      checkUrl('peer URL', request.peerUrl);
      checkUrl('client URL', request.clientUrl);
      const hosts = [...new Set([...request.hosts, urlHost(request.peerUrl), urlHost(request.clientUrl)])];
      for (const host of hosts) {
        if (isIP(host) === 0 && !NAME_PATTERN.test(host.toLowerCase())) throw invalid(`host ${JSON.stringify(host)} is neither an IP address nor a DNS name`);
      }
      const existing = options.store.stateMachine.members().find((member) => member.name === request.name);
      if (existing !== undefined) throw new ApiError('Conflict', `a master named ${request.name} is already a member (${existing.id.toString(16)}): remove it first (mastctl member remove ${existing.id.toString(16)}) or join under another name`);
      const caKeyPem = signer().keyPem;
      const certificate = await sign(request.certificateRequest, masterCertificateOptions(request.name, hosts));
      const tokenFile = options.tokenAuthFile === '' ? '' : readFileSync(options.tokenAuthFile, 'utf8');
      // Through this master's own etcd API, which forwards to the leader.
      const connection = new EtcdConnection(options.selfEndpoint, options.selfCredentials, 15_000);
      let added: Awaited<ReturnType<EtcdConnection['memberAdd']>>;
      try {
        added = await connection.memberAdd([request.peerUrl], false);
      } catch (error) {
        const status = error as Partial<grpc.ServiceError>;
        throw new ApiError('Conflict', `adding ${request.name} (${request.peerUrl}) to the membership failed: ${status.details ?? String(error)}`);
      } finally {
        connection.close();
      }
      const memberId = added.member?.ID ?? '0';
      const initialCluster = added.members
        .map((member) => ({ name: member.ID === memberId ? request.name : member.name, url: member.peerURLs[0] }))
        .filter((member) => member.name !== '' && member.url !== undefined)
        .map((member) => `${member.name}=${member.url}`)
        .join(',');
      options.log(`join: ${user} added master ${request.name} (${request.peerUrl}) as member ${BigInt(memberId).toString(16)}`);
      return {
        certificate,
        caCertificate: options.caCertPem,
        caKey: caKeyPem,
        tokenFile,
        initialCluster,
        initialClusterToken: options.initialClusterToken,
        memberId: Number(memberId),
        masters: [...new Set([...mastersOf(options.store), request.clientUrl])],
      };
    }),
  };
}
