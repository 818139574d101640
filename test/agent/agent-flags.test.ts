import { expect } from 'chai';
import { AgentFlagError, DEFAULT_EMBEDDED_POD_CIDR, parseAgentFlags, type AgentFlags } from '../../services/agent/flags.js';
import { cpuQuantity, memoryQuantity } from '../../services/agent/usage.js';

describe('mast agent flags', function () {
  const parse = (argv: string[]): AgentFlags => {
    const flags = parseAgentFlags(argv, { HOME: '/home/u' });
    if (flags === 'help') throw new Error('unexpected help');
    return flags;
  };

  it('defaults to the embedded runtime with a loopback pod range and kubelet-like settings', function () {
    const flags = parse(['--node-name', 'N1', '--server', 'http://127.0.0.1:2379']);
    expect(flags.nodeName).to.equal('n1');
    expect(flags.runtimeEndpoint).to.equal('');
    expect(flags.podCidr).to.equal(DEFAULT_EMBEDDED_POD_CIDR);
    expect(flags.rootDir).to.equal('/home/u/.mast/agent/n1');
    expect([flags.maxPods, flags.backoffInitialMs, flags.backoffMaxMs, flags.nodeStatusUpdateFrequencyMs]).to.deep.equal([110, 10_000, 300_000, 10_000]);
    expect(flags.client.server).to.equal('http://127.0.0.1:2379');
    expect(parseAgentFlags(['--help'])).to.equal('help');
  });

  it('reads labels, runtime, ranges, durations and TLS', function () {
    const flags = parse(['--node-labels', 'disktype=ssd,topology.kubernetes.io/zone=a', '--container-runtime-endpoint', 'unix:///run/c.sock', '--pod-cidr', '10.88.0.0/24', '--crash-loop-backoff-initial', '500ms', '--crash-loop-backoff-max', '2m', '--cluster-dns', '10.96.0.10', '--tls-cert-file', 'c', '--tls-private-key-file', 'k', '--client-ca-file', 'ca', '--listen-address', '0.0.0.0:0']);
    expect(flags.nodeLabels).to.deep.equal({ disktype: 'ssd', 'topology.kubernetes.io/zone': 'a' });
    expect(flags.runtimeEndpoint).to.equal('unix:///run/c.sock');
    expect([flags.backoffInitialMs, flags.backoffMaxMs]).to.deep.equal([500, 120_000]);
    expect(flags.clusterDns).to.deep.equal(['10.96.0.10']);
    expect(flags.tls).to.deep.equal({ certFile: 'c', keyFile: 'k', clientCaFile: 'ca' });
    expect(flags.listenAddress).to.equal('0.0.0.0:0');
    expect(flags.nodeIp).to.equal('');
  });

  it('takes the node IP from a listen address that names one, and refuses one masters could not reach', function () {
    expect(parse(['--listen-address', '127.0.0.1:0']).nodeIp).to.equal('127.0.0.1');
    expect(parse(['--listen-address', '10.0.0.5:10250', '--node-ip', '10.0.0.5']).nodeIp).to.equal('10.0.0.5');
    expect(() => parseAgentFlags(['--listen-address', '127.0.0.1:0', '--node-ip', '10.0.0.5'], { HOME: '/h' })).to.throw(
      AgentFlagError,
      '--listen-address 127.0.0.1:0 does not listen on the node IP 10.0.0.5, where masters reach the agent: listen on 10.0.0.5 or 0.0.0.0',
    );
  });

  it('names the flag that is wrong', function () {
    const refused = (argv: string[]): string => {
      try {
        parseAgentFlags(argv, { HOME: '/h' });
      } catch (error) {
        expect(error).to.be.instanceOf(AgentFlagError);
        return (error as Error).message;
      }
      throw new Error('accepted');
    };
    expect(refused(['--node-labels', 'novalue'])).to.equal('--node-labels: "novalue" is not KEY=VALUE with a valid label key');
    expect(refused(['--pod-cidr', '10.0.0.0/33'])).to.equal('--pod-cidr: "10.0.0.0/33" is not an IPv4 CIDR between /8 and /30');
    expect(refused(['--crash-loop-backoff-initial', 'soon'])).to.equal('--crash-loop-backoff-initial: "soon" is not a duration (e.g. 10s, 5m, 500ms)');
    expect(refused(['--container-runtime-endpoint', 'tcp://x'])).to.equal('--container-runtime-endpoint: "tcp://x" is not unix:///path/to/socket');
    expect(refused(['--tls-cert-file', 'c'])).to.match(/^--tls-cert-file, --tls-private-key-file and --client-ca-file go together/);
    expect(refused(['--max-pods', '0'])).to.equal('--max-pods: "0" is not a positive whole number');
    expect(refused(['--bogus'])).to.match(/Unknown option '--bogus'.*mast agent --help/);
    expect(refused(['--proxy-mode', 'iptables'])).to.equal('--proxy-mode: "iptables" is not nftables, ipvs, userspace or none');
    expect(refused(['--metrics-bind-address', '10249'])).to.equal('--metrics-bind-address: "10249" is not HOST:PORT');
    expect(refused(['--dns-bind-address', 'dns'])).to.equal('--dns-bind-address: "dns" is not HOST:PORT or none');
    expect(refused(['--proxy-sync-period', '10ms'])).to.equal('--proxy-sync-period must be at least 1s');
    expect(refused(['--dns-upstream', '8.8.8.8:0'])).to.equal('--dns-upstream: "8.8.8.8:0" is not IP or IP:PORT');
    expect(refused(['--nodeport-addresses', 'eth0'])).to.equal('--nodeport-addresses: "eth0" is not an IPv4 address');
    expect(refused(['--nftables-table', 'my table'])).to.match(/^--nftables-table: "my table" is not a table name/);
  });

  it('reads the Service proxy and cluster DNS settings, kube-proxy\'s defaults otherwise', function () {
    const defaults = parse([]);
    expect([defaults.proxyMode, defaults.metricsBindAddress, defaults.proxySyncPeriodMs, defaults.dnsBindAddress, defaults.nftablesTable]).to.deep.equal(['auto', '127.0.0.1:10249', 30_000, '', '']);
    expect([defaults.nodePortAddresses, defaults.dnsUpstream]).to.deep.equal([[], []]);
    const flags = parse(['--proxy-mode', 'userspace', '--metrics-bind-address', '', '--proxy-sync-period', '5s', '--nodeport-addresses', '10.0.0.5,10.0.0.6', '--dns-bind-address', 'none', '--dns-upstream', '1.1.1.1,10.0.0.53:5353', '--nftables-table', 'mast_test']);
    expect([flags.proxyMode, flags.metricsBindAddress, flags.proxySyncPeriodMs, flags.dnsBindAddress, flags.nftablesTable]).to.deep.equal(['userspace', '', 5000, 'none', 'mast_test']);
    expect([flags.nodePortAddresses, flags.dnsUpstream]).to.deep.equal([['10.0.0.5', '10.0.0.6'], ['1.1.1.1', '10.0.0.53:5353']]);
  });
});

describe('usage quantities', function () {
  it('turns cumulative CPU time into millicores over the window and memory into Ki', function () {
    expect(cpuQuantity(undefined, { cpuNs: 5e9, atNs: 10e9 })).to.equal('0');
    expect(cpuQuantity({ cpuNs: 1e9, atNs: 0 }, { cpuNs: 1e9 + 250e6 * 15, atNs: 15e9 })).to.equal('250m');
    expect(cpuQuantity({ cpuNs: 9e9, atNs: 0 }, { cpuNs: 1e9, atNs: 15e9 })).to.equal('0');
    expect(memoryQuantity(13 * 1024 * 1024)).to.equal('13312Ki');
    expect(memoryQuantity(1)).to.equal('1Ki');
  });
});
