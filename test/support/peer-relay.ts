// Userspace relays in front of the masters' peer ports, for faults the
// kernel here cannot make on loopback (no netem): each member advertises its
// relay's URL, so every peer link into a member goes through that member's
// relay, which can delay what it forwards or cut the links (while the
// member's own links out to the others stay up).

import { createServer, connect, type Server, type Socket } from 'node:net';
import { freePort, type LocalCluster } from '../../services/launcher/local-cluster.js';

/** A TCP relay in front of one master's peer port. */
export class PeerRelay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private isCut = false;
  /** Milliseconds each chunk is held, drawn per chunk (0: none); order is kept each way. */
  delayMs: () => number = () => 0;
  /** Chunks forwarded, and of them delayed (evidence the peers talk through the relay). */
  forwarded = 0;
  delayed = 0;
  /** Connections closed at once because the relay was cut. */
  refused = 0;

  constructor(
    readonly listenPort: number,
    private readonly targetPort: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.listenPort}`;
  }

  async start(): Promise<void> {
    const server = createServer((inbound) => {
      if (this.isCut) {
        this.refused++;
        inbound.destroy();
        return;
      }
      const outbound = connect(this.targetPort, '127.0.0.1');
      this.sockets.add(inbound);
      this.sockets.add(outbound);
      this.pipe(inbound, outbound);
      this.pipe(outbound, inbound);
      const close = (): void => {
        inbound.destroy();
        outbound.destroy();
        this.sockets.delete(inbound);
        this.sockets.delete(outbound);
      };
      inbound.on('close', close).on('error', close);
      outbound.on('close', close).on('error', close);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, '127.0.0.1', () => resolve());
    });
  }

  /** Break every link through the relay and close new ones at once, until `restore`. */
  cut(): void {
    this.isCut = true;
    this.destroySockets();
  }

  restore(): void {
    this.isCut = false;
  }

  private pipe(from: Socket, to: Socket): void {
    let lastDeliveryMs = 0;
    from.setNoDelay(true);
    from.on('data', (chunk: Buffer) => {
      const delay = this.delayMs();
      this.forwarded++;
      if (delay > 0) this.delayed++;
      if (delay <= 0 && lastDeliveryMs <= Date.now()) {
        to.write(chunk);
        return;
      }
      // In order: never before the chunk ahead of it.
      const at = Math.max(Date.now() + delay, lastDeliveryMs);
      lastDeliveryMs = at;
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, at - Date.now());
    });
  }

  private destroySockets(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  async stop(): Promise<void> {
    this.destroySockets();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * Start a relay in front of each member's peer port and make the members
 * (started after this) advertise the relays: relays[i] carries every peer link
 * into cluster.members[i]. The caller stops the relays.
 */
export async function relayPeerLinks(cluster: LocalCluster): Promise<PeerRelay[]> {
  const relays: PeerRelay[] = [];
  try {
    for (const member of cluster.members) {
      const relay = new PeerRelay(await freePort(), Number(new URL(member.peerUrl).port));
      relays.push(relay);
      await relay.start();
    }
  } catch (error) {
    for (const relay of relays) await relay.stop();
    throw error;
  }
  const relayUrl = new Map(cluster.members.map((member, index) => [member.name, relays[index]!.url]));
  const initialCluster = cluster.members.map((member) => `${member.name}=${relayUrl.get(member.name)!}`).join(',');
  const argsFor = cluster.argsFor.bind(cluster);
  cluster.argsFor = (member, state, given) =>
    argsFor(member, state, given).map((arg) => {
      if (arg.startsWith('--initial-advertise-peer-urls=')) return `--initial-advertise-peer-urls=${relayUrl.get(member.name)!}`;
      if (arg.startsWith('--initial-cluster=')) return `--initial-cluster=${initialCluster}`;
      return arg;
    });
  return relays;
}
