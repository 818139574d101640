// `mast master` flags: etcd's names, defaults and clear errors.

import { expect } from 'chai';
import { describePool } from '../../services/controllers/loadbalancer/reconcile.js';
import { FlagError, masterUsage, parseLoadBalancerIpPool, parseMasterFlags } from '../../services/master/flags.js';
import { InitialClusterError, memberIdOf, parseInitialCluster } from '../../services/store/index.js';

describe('mast master flags', function () {
  it('reads etcd-style flags in both --flag=value and --flag value forms, with etcd-like defaults', function () {
    const flags = parseMasterFlags(['--name', 'm1', '--listen-peer-urls=http://127.0.0.1:2380', '--initial-cluster', 'm1=http://127.0.0.1:2380', '--client-cert-auth=false', '--insecure']);
    expect(flags.name).to.equal('m1');
    expect(flags.dataDir).to.equal('m1.mast');
    expect(flags.initialAdvertisePeerUrls).to.deep.equal(['http://127.0.0.1:2380']);
    expect(flags.listenClientUrls).to.deep.equal(['http://localhost:2379']);
    expect(flags.initialClusterState).to.equal('new');
    expect(flags.heartbeatIntervalMs).to.equal(50);
    expect(flags.electionTimeoutMs).to.equal(250);
    expect(flags.maxRequestBytes).to.equal(1_572_864);
    expect(flags.autoCompactionRetention).to.equal(0);
    expect(parseMasterFlags(['--auto-compaction-retention=30m', '--insecure']).autoCompactionRetention).to.equal(1_800_000);
    expect(parseMasterFlags(['--auto-compaction-retention=1', '--insecure']).autoCompactionRetention).to.equal(3_600_000);
    expect(parseMasterFlags(['--auto-compaction-mode=revision', '--auto-compaction-retention=1000', '--insecure']).autoCompactionRetention).to.equal(1000);
  });

  it('names what is wrong', function () {
    const failure = (argv: string[], insecure = true): string => {
      try {
        parseMasterFlags(insecure ? ['--insecure', ...argv] : argv);
      } catch (error) {
        expect(error).to.be.instanceOf(FlagError);
        return (error as Error).message;
      }
      throw new Error('expected a FlagError');
    };
    expect(failure(['--nme', 'x'])).to.contain('unknown flag --nme');
    expect(failure(['--listen-client-urls', 'localhost:2379'])).to.contain('is not http(s)://host:port');
    expect(failure(['--listen-client-urls', 'https://127.0.0.1:2379'])).to.contain('need --cert-file and --key-file');
    expect(failure(['--heartbeat-interval', '100', '--election-timeout', '150'])).to.contain('at least twice');
    expect(failure(['--snapshot-count', 'many'])).to.contain('not a whole number');
    expect(failure(['--service-cluster-ip-range', '10.96.0.0'])).to.equal('--service-cluster-ip-range: "10.96.0.0" is not an IPv4 CIDR with a prefix of /8 to /30');
    expect(failure(['--service-node-port-range', '32767-30000'])).to.equal('--service-node-port-range: "32767-30000" is not LOW-HIGH within 1-65535');
    expect(parseMasterFlags(['--service-node-port-range', '31000-31099', '--insecure']).serviceNodePortRange).to.deep.equal([31000, 31099]);
    expect(failure(['--initial-cluster-state', 'old'])).to.contain('"new" or "existing"');
    expect(failure(['--name'])).to.contain('needs a value');
    expect(failure(['--auto-compaction-mode=revision', '--auto-compaction-retention=1h'])).to.contain('not a number of revisions');
    expect(failure(['--auto-compaction-retention=soon'])).to.contain('not a duration');
    expect(failure(['--traces-exporter=jaeger'])).to.equal('--traces-exporter must be none, console or otlp, not "jaeger"');
    expect(failure(['--event-ttl=soon'])).to.equal('--event-ttl: "soon" is not a duration such as 90s, 30m or 1h');
    expect(parseMasterFlags(['--insecure']).eventTtlMs).to.equal(3_600_000);
    expect(parseMasterFlags(['--insecure', '--event-ttl=90s']).eventTtlMs).to.equal(90_000);
  });

  it('reads --load-balancer-ip-pool (CIDRs and ranges, none by default) and names the part that is wrong', function () {
    expect(parseMasterFlags(['--insecure']).loadBalancerIpPool).to.equal(undefined);
    const pool = parseMasterFlags(['--insecure', '--load-balancer-ip-pool', '192.168.1.240/28,10.0.0.10-10.0.0.20']).loadBalancerIpPool;
    expect(describePool(pool!)).to.equal('10.0.0.10-10.0.0.20,192.168.1.241-192.168.1.254');
    expect(describePool(parseMasterFlags(['--insecure', '--load-balancer-ip-pool=10.0.0.4/31']).loadBalancerIpPool!)).to.equal('10.0.0.4-10.0.0.5');
    const failure = (value: string): string => {
      try {
        parseMasterFlags(['--insecure', `--load-balancer-ip-pool=${value}`]);
      } catch (error) {
        expect(error).to.be.instanceOf(FlagError);
        return (error as Error).message;
      }
      throw new Error('expected a FlagError');
    };
    expect(failure('10.0.0.0/24,10.0.0.300-10.0.0.310')).to.equal('--load-balancer-ip-pool: "10.0.0.300-10.0.0.310" is not a range of two IPv4 addresses A.B.C.D-E.F.G.H');
    expect(failure('10.0.0.1/24')).to.equal('--load-balancer-ip-pool: "10.0.0.1/24" has host bits set (did you mean 10.0.0.0/24?)');
    expect(failure('10.0.0.0/24,10.0.0.128/25')).to.equal('--load-balancer-ip-pool: "10.0.0.128/25" overlaps "10.0.0.0/24"');
    expect(failure('')).to.contain('--load-balancer-ip-pool: "" is empty');
    // The standalone controller-manager's parser says the same.
    expect(() => parseLoadBalancerIpPool('10.0.0.5')).to.throw(FlagError, '--load-balancer-ip-pool: "10.0.0.5" is neither a CIDR');
    expect(masterUsage()).to.contain('--load-balancer-ip-pool');
  });

  it('is secure by default: authenticated TLS clients, or an explicit --insecure', function () {
    const failure = (argv: string[]): string => {
      try {
        parseMasterFlags(argv);
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error('expected a FlagError');
    };
    expect(failure([])).to.equal(
      'client URL http://localhost:2379 is plain http: clients must be authenticated over TLS. Use https:// URLs with --cert-file/--key-file, --trusted-ca-file and --token-auth-file (mast init writes them), or pass --insecure for a local try',
    );
    expect(failure(['--listen-client-urls=https://127.0.0.1:2379', '--cert-file=m.crt', '--key-file=m.key'])).to.contain('no way to authenticate clients');
    const secure = parseMasterFlags(['--listen-client-urls=https://127.0.0.1:2379', '--cert-file=m.crt', '--key-file=m.key', '--trusted-ca-file=ca.crt', '--token-auth-file=tokens.csv']);
    expect(secure.insecure).to.equal(false);
    expect(secure.tokenAuthFile).to.equal('tokens.csv');
    expect(parseMasterFlags(['--insecure']).insecure).to.equal(true);
  });

  it('parses --initial-cluster into members with ids derived from peer URLs and the token', function () {
    const members = parseInitialCluster('a=http://10.0.0.1:2380,b=http://10.0.0.2:2380', 'tok');
    expect(members.map((member) => member.name)).to.deep.equal(['a', 'b']);
    expect(members[0]!.id).to.equal(memberIdOf(['http://10.0.0.1:2380'], 'tok'));
    expect(members[0]!.id).to.not.equal(memberIdOf(['http://10.0.0.1:2380'], 'other-token'));
    expect(Number.isSafeInteger(members[0]!.id)).to.equal(true);
    expect(() => parseInitialCluster('a', 'tok')).to.throw(InitialClusterError, 'is not NAME=PEER_URL');
    expect(() => parseInitialCluster('a=ftp://x:1', 'tok')).to.throw(InitialClusterError, 'http:// or https://');
  });
});
