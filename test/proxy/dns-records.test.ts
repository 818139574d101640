// DnsRecords: the Kubernetes DNS schema answered from Services and Endpoints —
// cluster IPs, headless Services and their StatefulSet hostnames, SRV for
// named ports, ExternalName aliases, pod records, PTR; NODATA against
// NXDOMAIN; case, trailing dots, TTL and cluster domain.

import { expect } from 'chai';
import type { EndpointAddress, EndpointSubset, Endpoints, Service, ServiceSpec } from '../../proto/gen/resources/v1/core.js';
import { DnsRecords, type DnsAnswer, type DnsRecord } from '../../services/proxy/dns-records.js';

function service(namespace: string, name: string, spec: ServiceSpec): Service {
  return { metadata: { namespace, name }, spec };
}

function endpoints(namespace: string, name: string, subsets: EndpointSubset[]): Endpoints {
  return { metadata: { namespace, name }, subsets };
}

function address(ip: string, hostname?: string): EndpointAddress {
  return { ip, ...(hostname === undefined ? {} : { hostname }), targetRef: { kind: 'Pod', namespace: 'default', name: hostname ?? ip } };
}

const SERVICES: Service[] = [
  service('default', 'web', {
    clusterIP: '10.96.0.10',
    ports: [
      { name: 'http', port: 80, protocol: 'TCP' },
      { name: 'dns', port: 53, protocol: 'UDP' },
      { port: 9000, protocol: 'TCP' }, // unnamed: no SRV
    ],
  }),
  service('default', 'db', { clusterIP: 'None', ports: [{ name: 'pg', port: 5432, protocol: 'TCP' }] }),
  service('default', 'workers', { clusterIP: 'None', ports: [{ name: 'rpc', port: 7000 }] }),
  service('default', 'empty', { clusterIP: 'None', ports: [{ name: 'http', port: 80 }] }),
  service('default', 'search', { type: 'ExternalName', externalName: 'Search.Example.COM.' }),
  service('default', 'dual', { clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20', 'fd00::20'], ipFamilies: ['IPv4', 'IPv6'] }),
  service('other', 'db', { clusterIP: 'None', ports: [{ name: 'pg', port: 5432 }] }),
  service('kube-system', 'kube-dns', { clusterIP: '10.96.0.53', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] }),
];

const ENDPOINTS: Endpoints[] = [
  // The web Service's endpoints do not show up in its records: it has a cluster IP.
  endpoints('default', 'web', [{ addresses: [address('10.244.1.1', 'w')], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }]),
  endpoints('default', 'db', [
    {
      addresses: [address('10.244.1.10', 'db-0'), address('10.244.2.11', 'db-1')],
      notReadyAddresses: [address('10.244.3.12', 'db-2')],
      ports: [{ name: 'pg', port: 5433, protocol: 'TCP' }],
    },
  ]),
  endpoints('default', 'workers', [
    { addresses: [address('10.244.1.20'), address('10.244.2.21'), address('10.244.3.22', 'lead')], ports: [{ name: 'rpc', port: 7001, protocol: 'TCP' }] },
  ]),
  // Same name, other namespace: must not leak into default/db (nor default/db's into it).
  endpoints('other', 'db', [{ addresses: [address('10.244.9.9', 'db-0')], ports: [{ name: 'pg', port: 5432 }] }]),
];

const records = new DnsRecords(SERVICES, ENDPOINTS);

function data(answer: DnsAnswer): string[] {
  return answer.answers.map(show);
}

function show(record: DnsRecord): string {
  switch (record.type) {
    case 'A':
    case 'AAAA':
      return `${record.name} ${record.type} ${record.address}`;
    case 'CNAME':
    case 'PTR':
      return `${record.name} ${record.type} ${record.target}`;
    case 'SRV':
      return `${record.name} SRV ${record.priority} ${record.weight} ${record.port} ${record.target}`;
    case 'TXT':
      return `${record.name} TXT ${record.text}`;
    case 'SOA':
      return `${record.name} SOA ${record.mname} ${record.rname}`;
  }
}

function expectNoData(answer: DnsAnswer): void {
  expect(answer.rcode).to.equal('NOERROR');
  expect(answer.answers).to.deep.equal([]);
  expect(answer.authorities.map(show)).to.deep.equal(['cluster.local SOA ns.dns.cluster.local hostmaster.cluster.local']);
}

function expectNxdomain(answer: DnsAnswer): void {
  expect(answer.rcode).to.equal('NXDOMAIN');
  expect(answer.answers).to.deep.equal([]);
  expect(answer.authorities.map((record) => record.type)).to.deep.equal(['SOA']);
}

describe('proxy: cluster DNS records', () => {
  describe('Services with a cluster IP', () => {
    it('answers A with the cluster IP, TTL 5 s', () => {
      const answer = records.answer('web.default.svc.cluster.local', 'A');
      expect(answer.rcode).to.equal('NOERROR');
      expect(answer.answers).to.deep.equal([{ type: 'A', name: 'web.default.svc.cluster.local', ttl: 5, address: '10.96.0.10' }]);
      expect(answer.authorities).to.deep.equal([]);
      expect(data(records.answer('kube-dns.kube-system.svc.cluster.local', 'A'))).to.deep.equal(['kube-dns.kube-system.svc.cluster.local A 10.96.0.53']);
    });

    it('ignores case and a trailing dot, and owns the answer by the name as asked', () => {
      expect(data(records.answer('WEB.Default.SVC.Cluster.Local.', 'a'))).to.deep.equal(['WEB.Default.SVC.Cluster.Local A 10.96.0.10']);
      expect(data(records.answer('web.default.svc.cluster.local.', 'A'))).to.deep.equal(['web.default.svc.cluster.local A 10.96.0.10']);
    });

    it('answers AAAA from the IPv6 cluster IP of a dual-stack Service, A from the IPv4 one', () => {
      expect(data(records.answer('dual.default.svc.cluster.local', 'A'))).to.deep.equal(['dual.default.svc.cluster.local A 10.96.0.20']);
      expect(data(records.answer('dual.default.svc.cluster.local', 'AAAA'))).to.deep.equal(['dual.default.svc.cluster.local AAAA fd00::20']);
    });

    it('answers SRV per named port, weight 100 on the Service name, with its A record as additional', () => {
      const http = records.answer('_http._tcp.web.default.svc.cluster.local', 'SRV');
      expect(http.rcode).to.equal('NOERROR');
      expect(data(http)).to.deep.equal(['_http._tcp.web.default.svc.cluster.local SRV 0 100 80 web.default.svc.cluster.local']);
      expect(http.additionals.map(show)).to.deep.equal(['web.default.svc.cluster.local A 10.96.0.10']);
      expect(data(records.answer('_DNS._UDP.web.default.svc.cluster.local.', 'SRV'))).to.deep.equal(['_DNS._UDP.web.default.svc.cluster.local SRV 0 100 53 web.default.svc.cluster.local']);
    });

    it('has no SRV for a wrong protocol, an unknown port or an unnamed port', () => {
      expectNxdomain(records.answer('_http._udp.web.default.svc.cluster.local', 'SRV'));
      expectNxdomain(records.answer('_https._tcp.web.default.svc.cluster.local', 'SRV'));
      expectNxdomain(records.answer('_._tcp.web.default.svc.cluster.local', 'SRV'));
    });

    it('publishes no per-endpoint names for a Service with a cluster IP', () => {
      expectNxdomain(records.answer('w.web.default.svc.cluster.local', 'A'));
      expectNxdomain(records.answer('10-244-1-1.web.default.svc.cluster.local', 'A'));
    });
  });

  describe('headless Services', () => {
    it('answers one A per ready address, not the not-ready ones', () => {
      expect(data(records.answer('db.default.svc.cluster.local', 'A'))).to.deep.equal([
        'db.default.svc.cluster.local A 10.244.1.10',
        'db.default.svc.cluster.local A 10.244.2.11',
      ]);
    });

    it('answers a StatefulSet pod by its hostname under the Service', () => {
      expect(data(records.answer('db-0.db.default.svc.cluster.local', 'A'))).to.deep.equal(['db-0.db.default.svc.cluster.local A 10.244.1.10']);
      expect(data(records.answer('DB-1.db.default.svc.cluster.local.', 'A'))).to.deep.equal(['DB-1.db.default.svc.cluster.local A 10.244.2.11']);
      expect(data(records.answer('db-0.db.other.svc.cluster.local', 'A'))).to.deep.equal(['db-0.db.other.svc.cluster.local A 10.244.9.9']);
      expectNxdomain(records.answer('db-1.db.other.svc.cluster.local', 'A'));
      expectNxdomain(records.answer('db-2.db.default.svc.cluster.local', 'A')); // not ready
      expectNxdomain(records.answer('db-9.db.default.svc.cluster.local', 'A'));
    });

    it('answers SRV with one record per ready endpoint on the endpoint port, targets hostnames, addresses as additionals', () => {
      const pg = records.answer('_pg._tcp.db.default.svc.cluster.local', 'SRV');
      expect(data(pg)).to.deep.equal([
        '_pg._tcp.db.default.svc.cluster.local SRV 0 50 5433 db-0.db.default.svc.cluster.local',
        '_pg._tcp.db.default.svc.cluster.local SRV 0 50 5433 db-1.db.default.svc.cluster.local',
      ]);
      expect(pg.additionals.map(show)).to.deep.equal([
        'db-0.db.default.svc.cluster.local A 10.244.1.10',
        'db-1.db.default.svc.cluster.local A 10.244.2.11',
      ]);
    });

    it('names endpoints without a hostname after their IP, and those names resolve', () => {
      const rpc = records.answer('_rpc._tcp.workers.default.svc.cluster.local', 'SRV');
      expect(data(rpc)).to.deep.equal([
        '_rpc._tcp.workers.default.svc.cluster.local SRV 0 33 7001 10-244-1-20.workers.default.svc.cluster.local',
        '_rpc._tcp.workers.default.svc.cluster.local SRV 0 33 7001 10-244-2-21.workers.default.svc.cluster.local',
        '_rpc._tcp.workers.default.svc.cluster.local SRV 0 33 7001 lead.workers.default.svc.cluster.local',
      ]);
      expect(rpc.additionals.map(show)).to.deep.equal([
        '10-244-1-20.workers.default.svc.cluster.local A 10.244.1.20',
        '10-244-2-21.workers.default.svc.cluster.local A 10.244.2.21',
        'lead.workers.default.svc.cluster.local A 10.244.3.22',
      ]);
      expect(data(records.answer('10-244-2-21.workers.default.svc.cluster.local', 'A'))).to.deep.equal(['10-244-2-21.workers.default.svc.cluster.local A 10.244.2.21']);
      // An endpoint with a hostname goes by that name only (as in CoreDNS).
      expectNxdomain(records.answer('10-244-3-22.workers.default.svc.cluster.local', 'A'));
    });

    it('keeps the names of a headless Service without ready endpoints: NODATA, not NXDOMAIN', () => {
      expectNoData(records.answer('empty.default.svc.cluster.local', 'A'));
      expectNoData(records.answer('_http._tcp.empty.default.svc.cluster.local', 'SRV'));
    });

    it('splits SRV weights as CoreDNS does (100 / count, rounded down) for many endpoints', () => {
      const addresses = Array.from({ length: 7 }, (_, index) => address(`10.1.0.${index + 1}`));
      const many = new DnsRecords(
        [service('default', 'big', { clusterIP: 'None', ports: [{ name: 'http', port: 80 }] })],
        [endpoints('default', 'big', [{ addresses, ports: [{ name: 'http', port: 8080 }] }])],
      );
      const answer = many.answer('_http._tcp.big.default.svc.cluster.local', 'SRV');
      expect(answer.answers).to.have.length(7);
      expect(answer.answers.every((record) => record.type === 'SRV' && record.weight === 14 && record.priority === 0 && record.port === 8080)).to.equal(true);
      expect(answer.additionals).to.have.length(7);
    });
  });

  describe('ExternalName Services', () => {
    it('answers a CNAME to spec.externalName for any type asked', () => {
      for (const type of ['A', 'AAAA', 'CNAME', 'TXT']) {
        const answer = records.answer('search.default.svc.cluster.local', type);
        expect(answer.rcode, type).to.equal('NOERROR');
        expect(data(answer), type).to.deep.equal(['search.default.svc.cluster.local CNAME search.example.com']);
      }
    });
  });

  describe('pod records', () => {
    it('answers A-B-C-D.NS.pod.DOMAIN with A.B.C.D for any namespace', () => {
      expect(data(records.answer('10-244-1-5.default.pod.cluster.local', 'A'))).to.deep.equal(['10-244-1-5.default.pod.cluster.local A 10.244.1.5']);
      expect(data(records.answer('172-17-0-1.Anything.POD.cluster.local.', 'A'))).to.deep.equal(['172-17-0-1.Anything.POD.cluster.local A 172.17.0.1']);
    });

    it('answers NODATA for other types and NXDOMAIN for labels that are not an address', () => {
      expectNoData(records.answer('10-244-1-5.default.pod.cluster.local', 'AAAA'));
      expectNxdomain(records.answer('10-244-1-256.default.pod.cluster.local', 'A'));
      expectNxdomain(records.answer('10-244-1.default.pod.cluster.local', 'A'));
      expectNxdomain(records.answer('10-244-01-5.default.pod.cluster.local', 'A'));
      expectNxdomain(records.answer('x.10-244-1-5.default.pod.cluster.local', 'A'));
      expectNoData(records.answer('default.pod.cluster.local', 'A'));
      expectNoData(records.answer('pod.cluster.local', 'A'));
    });
  });

  describe('NODATA against NXDOMAIN', () => {
    it('answers an existing name asked for a type it lacks with NOERROR, no answers and the SOA', () => {
      expectNoData(records.answer('web.default.svc.cluster.local', 'AAAA'));
      expectNoData(records.answer('web.default.svc.cluster.local', 'TXT'));
      expectNoData(records.answer('web.default.svc.cluster.local', 'SRV'));
      expectNoData(records.answer('db-0.db.default.svc.cluster.local', 'MX'));
      expectNoData(records.answer('_http._tcp.web.default.svc.cluster.local', 'A'));
    });

    it('answers names that only have names below them with NOERROR and no answers', () => {
      expectNoData(records.answer('default.svc.cluster.local', 'A'));
      expectNoData(records.answer('kube-system.svc.cluster.local.', 'A'));
      expectNoData(records.answer('svc.cluster.local', 'A'));
      expectNoData(records.answer('cluster.local', 'A'));
      expectNoData(records.answer('_tcp.web.default.svc.cluster.local', 'SRV'));
      expectNoData(records.answer('_udp.web.default.svc.cluster.local', 'SRV'));
    });

    it('answers unknown names in the domain with NXDOMAIN and the SOA', () => {
      expectNxdomain(records.answer('nope.default.svc.cluster.local', 'A'));
      expectNxdomain(records.answer('web.nowhere.svc.cluster.local', 'A'));
      expectNxdomain(records.answer('web.default.cluster.local', 'A'));
      expectNxdomain(records.answer('foo.cluster.local', 'A'));
      expectNxdomain(records.answer('_sctp.web.default.svc.cluster.local', 'SRV'));
      expectNxdomain(records.answer('a.b._http._tcp.web.default.svc.cluster.local', 'SRV'));
    });

    it('serves the SOA at the apex and the schema version', () => {
      expect(data(records.answer('cluster.local', 'SOA'))).to.deep.equal(['cluster.local SOA ns.dns.cluster.local hostmaster.cluster.local']);
      expect(data(records.answer('dns-version.cluster.local', 'TXT'))).to.deep.equal(['dns-version.cluster.local TXT 1.1.0']);
      expectNoData(records.answer('dns-version.cluster.local', 'A'));
    });
  });

  describe('reverse lookups', () => {
    it('answers PTR for cluster IPs and headless endpoints, and claims no other reverse name', () => {
      expect(records.isAuthoritativeFor('10.0.96.10.in-addr.arpa')).to.equal(true);
      expect(data(records.answer('10.0.96.10.in-addr.arpa.', 'PTR'))).to.deep.equal(['10.0.96.10.in-addr.arpa PTR web.default.svc.cluster.local']);
      expect(data(records.answer('10.1.244.10.in-addr.arpa', 'PTR'))).to.deep.equal(['10.1.244.10.in-addr.arpa PTR db-0.db.default.svc.cluster.local']);
      expect(data(records.answer('20.1.244.10.in-addr.arpa', 'PTR'))).to.deep.equal(['20.1.244.10.in-addr.arpa PTR 10-244-1-20.workers.default.svc.cluster.local']);
      expect(records.isAuthoritativeFor('1.1.1.1.in-addr.arpa')).to.equal(false);
      expect(records.answer('1.1.1.1.in-addr.arpa', 'PTR').rcode).to.equal('REFUSED');
    });
  });

  describe('options and scope', () => {
    it('claims only names in its cluster domain', () => {
      expect(records.isAuthoritativeFor('web.default.svc.cluster.local.')).to.equal(true);
      expect(records.isAuthoritativeFor('CLUSTER.LOCAL')).to.equal(true);
      expect(records.isAuthoritativeFor('example.com')).to.equal(false);
      expect(records.isAuthoritativeFor('notcluster.local')).to.equal(false);
      expect(records.answer('example.com', 'A').rcode).to.equal('REFUSED');
    });

    it('takes the cluster domain and TTL as options', () => {
      const custom = new DnsRecords(SERVICES, ENDPOINTS, { clusterDomain: 'Mast.Internal.', ttlSeconds: 30 });
      expect(custom.answer('web.default.svc.mast.internal', 'A').answers).to.deep.equal([{ type: 'A', name: 'web.default.svc.mast.internal', ttl: 30, address: '10.96.0.10' }]);
      expect(custom.isAuthoritativeFor('web.default.svc.cluster.local')).to.equal(false);
      const soa = custom.answer('nope.mast.internal', 'A').authorities[0];
      expect(soa?.type === 'SOA' ? [soa.name, soa.ttl, soa.minimumSeconds] : undefined).to.deep.equal(['mast.internal', 30, 30]);
    });

    it('answers ANY with every record of the name', () => {
      expect(data(records.answer('dual.default.svc.cluster.local', 'ANY'))).to.deep.equal(['dual.default.svc.cluster.local A 10.96.0.20', 'dual.default.svc.cluster.local AAAA fd00::20']);
    });

    it('skips Services without a name and tolerates missing specs and Endpoints', () => {
      const odd = new DnsRecords([{ metadata: { namespace: 'default' } }, { metadata: { name: 'bare', namespace: 'default' } }], []);
      expect(odd.serviceCount).to.equal(1);
      expectNoData(odd.answer('bare.default.svc.cluster.local', 'A'));
    });
  });
});
