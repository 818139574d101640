// Netlink and IPVS messages byte for byte against the layouts of
// netlink.h, genetlink.h and ip_vs.h: every expected message below is
// assembled by hand, field by field (little-endian host integers,
// big-endian ports, attributes padded to 4 bytes). Then the decoding of
// crafted kernel replies, and real round trips with this kernel.

import { expect } from 'chai';
import {
  dumpDestinationsRequest,
  dumpServicesRequest,
  deleteDestinationRequest,
  deleteServiceRequest,
  masqueradeRealServer,
  newDestinationRequest,
  newServiceRequest,
  parseDestination,
  parseService,
  setServiceRequest,
} from '../../services/proxy/ipvs-messages.js';
import { ipvsUsable } from '../../services/proxy/ipvs.js';
import {
  NLM_F_ACK,
  NLM_F_REQUEST,
  NetlinkError,
  NetlinkFormatError,
  addressRequest,
  classifyReply,
  decodeAttributes,
  decodeMessages,
  dumpAddressesRequest,
  encodeAttributes,
  encodeMessage,
  getFamilyRequest,
  getLinkRequest,
  nestedAttribute,
  newLinkRequest,
  parseAddress,
  parseFamily,
  stringAttribute,
  u16Attribute,
  u32Attribute,
  u8Attribute,
} from '../../services/proxy/netlink.js';
import { NetlinkSocket } from '../../services/proxy/netlink-socket.js';

/** Hex with spaces and "|" for readability → bytes. */
function bytes(...parts: string[]): Uint8Array {
  return Uint8Array.from(Buffer.from(parts.join('').replace(/[\s|]/g, ''), 'hex'));
}

function hexOf(value: Uint8Array): string {
  return Buffer.from(value).toString('hex');
}

const IPVS_FAMILY = 0x25;

// The nested IPVS_CMD_ATTR_SERVICE key of TCP 10.96.0.10:80, 48 bytes.
const TCP_10_96_0_10_80_KEY = [
  '3000 0180', //                         nla_len 48, IPVS_CMD_ATTR_SERVICE (1) | NLA_F_NESTED
  '0600 0100 0200 0000', //               IPVS_SVC_ATTR_AF u16 2 (AF_INET), 2 bytes padding
  '0600 0200 0600 0000', //               IPVS_SVC_ATTR_PROTOCOL u16 6 (TCP)
  '1400 0300 0a60000a 00000000 00000000 00000000', // IPVS_SVC_ATTR_ADDR: nf_inet_addr, 10.96.0.10
  '0600 0400 0050 0000', //               IPVS_SVC_ATTR_PORT be16 80
];

describe('proxy: netlink messages, byte for byte', () => {
  it('CTRL_CMD_GETFAMILY "IPVS"', () => {
    const expected = bytes(
      '20000000 1000 0500 01000000 00000000', // nlmsghdr: len 32, GENL_ID_CTRL, REQUEST|ACK, seq 1, pid 0
      '03 01 0000', //                          genlmsghdr: CTRL_CMD_GETFAMILY, version 1
      '0900 0200 49505653 00 000000', //        CTRL_ATTR_FAMILY_NAME "IPVS\0" (nla_len 9), 3 bytes padding
    );
    expect(hexOf(getFamilyRequest('IPVS', 1))).to.equal(hexOf(expected));
  });

  it('IPVS_CMD_NEW_SERVICE: TCP 10.96.0.10:80, rr, not persistent', () => {
    const expected = bytes(
      '68000000 2500 0500 02000000 00000000', // len 104, family 0x25, REQUEST|ACK, seq 2
      '01 01 0000', //                          IPVS_CMD_NEW_SERVICE, version 1
      '5400 0180', //                           IPVS_CMD_ATTR_SERVICE nested, nla_len 84
      '0600 0100 0200 0000',
      '0600 0200 0600 0000',
      '1400 0300 0a60000a 00000000 00000000 00000000',
      '0600 0400 0050 0000',
      '0700 0600 727200 00', //                 IPVS_SVC_ATTR_SCHED_NAME "rr\0"
      '0c00 0700 00000000 ffffffff', //         IPVS_SVC_ATTR_FLAGS {flags 0, mask ~0}
      '0800 0800 00000000', //                  IPVS_SVC_ATTR_TIMEOUT 0
      '0800 0900 ffffffff', //                  IPVS_SVC_ATTR_NETMASK 255.255.255.255
    );
    const message = newServiceRequest(IPVS_FAMILY, { protocol: 'TCP', address: '10.96.0.10', port: 80, scheduler: 'rr' }, 2);
    expect(hexOf(message)).to.equal(hexOf(expected));
  });

  it('IPVS_CMD_NEW_SERVICE / SET_SERVICE: UDP 10.96.0.10:53, persistent for 10800 s', () => {
    const service = [
      '5400 0180',
      '0600 0100 0200 0000',
      '0600 0200 1100 0000', //                 PROTOCOL 17 (UDP)
      '1400 0300 0a60000a 00000000 00000000 00000000',
      '0600 0400 0035 0000', //                 PORT be16 53
      '0700 0600 727200 00',
      '0c00 0700 01000000 ffffffff', //         FLAGS {IP_VS_SVC_F_PERSISTENT, mask ~0}
      '0800 0800 302a0000', //                  TIMEOUT 10800 (0x2a30)
      '0800 0900 ffffffff',
    ];
    const server = { protocol: 'UDP', address: '10.96.0.10', port: 53, scheduler: 'rr', persistenceTimeoutSeconds: 10_800 } as const;
    expect(hexOf(newServiceRequest(IPVS_FAMILY, server, 3))).to.equal(hexOf(bytes('68000000 2500 0500 03000000 00000000', '01 01 0000', ...service)));
    expect(hexOf(setServiceRequest(IPVS_FAMILY, server, 4))).to.equal(hexOf(bytes('68000000 2500 0500 04000000 00000000', '02 01 0000', ...service)));
  });

  it('IPVS_CMD_DEL_SERVICE names the service by its key only', () => {
    const expected = bytes('44000000 2500 0500 05000000 00000000', '03 01 0000', ...TCP_10_96_0_10_80_KEY);
    expect(hexOf(deleteServiceRequest(IPVS_FAMILY, { protocol: 'TCP', address: '10.96.0.10', port: 80 }, 5))).to.equal(hexOf(expected));
  });

  it('IPVS_CMD_NEW_DEST: 10.244.0.5:8080, masquerading, weight 1', () => {
    const expected = bytes(
      '8c000000 2500 0500 06000000 00000000', // len 140
      '05 01 0000', //                          IPVS_CMD_NEW_DEST
      ...TCP_10_96_0_10_80_KEY,
      '4800 0280', //                           IPVS_CMD_ATTR_DEST nested, nla_len 72
      '1400 0100 0af40005 00000000 00000000 00000000', // IPVS_DEST_ATTR_ADDR 10.244.0.5
      '0600 0200 1f90 0000', //                 IPVS_DEST_ATTR_PORT be16 8080
      '0800 0300 00000000', //                  IPVS_DEST_ATTR_FWD_METHOD IP_VS_CONN_F_MASQ
      '0800 0400 01000000', //                  IPVS_DEST_ATTR_WEIGHT 1
      '0800 0500 00000000', //                  IPVS_DEST_ATTR_U_THRESH 0
      '0800 0600 00000000', //                  IPVS_DEST_ATTR_L_THRESH 0
      '0600 0b00 0200 0000', //                 IPVS_DEST_ATTR_ADDR_FAMILY AF_INET
    );
    const service = { protocol: 'TCP', address: '10.96.0.10', port: 80 } as const;
    expect(hexOf(newDestinationRequest(IPVS_FAMILY, service, masqueradeRealServer('10.244.0.5', 8080), 6))).to.equal(hexOf(expected));
  });

  it('IPVS_CMD_DEL_DEST names the real server by address and port only', () => {
    const expected = bytes(
      '64000000 2500 0500 07000000 00000000', // len 100
      '07 01 0000', //                          IPVS_CMD_DEL_DEST
      ...TCP_10_96_0_10_80_KEY,
      '2000 0280',
      '1400 0100 0af40005 00000000 00000000 00000000',
      '0600 0200 1f90 0000',
    );
    const service = { protocol: 'TCP', address: '10.96.0.10', port: 80 } as const;
    expect(hexOf(deleteDestinationRequest(IPVS_FAMILY, service, { address: '10.244.0.5', port: 8080 }, 7))).to.equal(hexOf(expected));
  });

  it('dumps: GET_SERVICE with no attributes, GET_DEST with the service key; REQUEST|DUMP', () => {
    expect(hexOf(dumpServicesRequest(IPVS_FAMILY, 8))).to.equal(hexOf(bytes('14000000 2500 0103 08000000 00000000', '04 01 0000')));
    const service = { protocol: 'TCP', address: '10.96.0.10', port: 80 } as const;
    expect(hexOf(dumpDestinationsRequest(IPVS_FAMILY, service, 9))).to.equal(hexOf(bytes('44000000 2500 0103 09000000 00000000', '08 01 0000', ...TCP_10_96_0_10_80_KEY)));
  });

  it('rtnetlink: a dummy link, a /32 address, an address dump', () => {
    expect(hexOf(newLinkRequest('mast-ipvs0', 'dummy', 1))).to.equal(
      hexOf(
        bytes(
          '40000000 1000 0506 01000000 00000000', // len 64, RTM_NEWLINK, REQUEST|ACK|EXCL|CREATE
          '00 00 0000 00000000 00000000 00000000', // ifinfomsg: AF_UNSPEC, index 0
          '0f00 0300 6d6173742d69707673300000', //   IFLA_IFNAME "mast-ipvs0\0" (nla_len 15), 1 byte padding
          '1000 1280', //                            IFLA_LINKINFO nested, nla_len 16
          '0a00 0100 64756d6d7900 0000', //          IFLA_INFO_KIND "dummy\0"
        ),
      ),
    );
    expect(hexOf(addressRequest('add', { index: 7, address: '10.96.0.10', prefixLength: 32 }, 2))).to.equal(
      hexOf(
        bytes(
          '28000000 1400 0505 02000000 00000000', // len 40, RTM_NEWADDR, REQUEST|ACK|REPLACE|CREATE
          '02 20 00 00 07000000', //                 ifaddrmsg: AF_INET, /32, index 7
          '0800 0200 0a60000a', //                   IFA_LOCAL
          '0800 0100 0a60000a', //                   IFA_ADDRESS
        ),
      ),
    );
    expect(hexOf(addressRequest('delete', { index: 7, address: '10.96.0.10', prefixLength: 32 }, 3))).to.equal(
      hexOf(bytes('28000000 1500 0500 03000000 00000000', '02 20 00 00 07000000', '0800 0200 0a60000a', '0800 0100 0a60000a')), // RTM_DELADDR, REQUEST|ACK
    );
    expect(hexOf(dumpAddressesRequest(4))).to.equal(hexOf(bytes('18000000 1600 0103 04000000 00000000', '02 00 00 00 00000000')));
    expect(hexOf(getLinkRequest('lo', 5))).to.equal(hexOf(bytes('28000000 1200 0500 05000000 00000000', '00 00 0000 00000000 00000000 00000000', '0700 0300 6c6f00 00')));
  });

  it('attributes: u8/u16/u32 and nesting encode and decode back', () => {
    const encoded = encodeAttributes([u8Attribute(1, 0xab), u16Attribute(2, 0x1234), u32Attribute(3, 0xdeadbeef), nestedAttribute(4, [stringAttribute(1, 'x')])]);
    expect(hexOf(encoded)).to.equal(hexOf(bytes('0500 0100 ab 000000', '0600 0200 3412 0000', '0800 0300 efbeadde', '0c00 0480 0600 0100 7800 0000')));
    const decoded = decodeAttributes(encoded);
    expect([decoded.u8(1), decoded.u16(2), decoded.u32(3), decoded.nested(4)?.string(1)]).to.deep.equal([0xab, 0x1234, 0xdeadbeef, 'x']);
    expect(decoded.get(4)?.nested).to.equal(true);
    expect(() => u16Attribute(1, 70_000)).to.throw(RangeError);
    expect(() => stringAttribute(1, 'a\0b')).to.throw(RangeError);
  });
});

describe('proxy: netlink replies, decoded', () => {
  it('an NLMSG_ERROR with an extended ack: errno by name and the kernel words', () => {
    const datagram = bytes(
      '3c000000 0200 0003 07000000 d2040000', // len 60, NLMSG_ERROR, CAPPED|ACK_TLVS, seq 7, pid 1234
      'feffffff', //                            error -2 (ENOENT)
      '20000000 1000 0500 07000000 00000000', // the request's header, capped
      '1800 0100 556e6b6e6f776e206465766963652074797065 00', // NLMSGERR_ATTR_MSG "Unknown device type\0"
    );
    const [message, ...rest] = decodeMessages(datagram);
    expect(rest).to.have.length(0);
    expect(message).to.include({ type: 2, seq: 7, pid: 1234 });
    const part = classifyReply(message!);
    expect(part).to.deep.equal({ kind: 'error', errno: 2, kernelMessage: 'Unknown device type' });
    const error = new NetlinkError('create dummy link x', 2, 'kernel says "Unknown device type"');
    expect(error.code).to.equal('ENOENT');
    expect(error.message).to.equal('create dummy link x: ENOENT (no such entry): kernel says "Unknown device type"');
  });

  it('an ack is an NLMSG_ERROR with error 0; a DONE may carry a dump error', () => {
    const [ack] = decodeMessages(bytes('24000000 0200 0001 03000000 00000000', '00000000', '14000000 2500 0500 03000000 00000000'));
    expect(classifyReply(ack!)).to.deep.equal({ kind: 'ack' });
    const [done, failed] = decodeMessages(bytes('14000000 0300 0200 03000000 00000000 00000000', '14000000 0300 0200 03000000 00000000 f0ffffff'));
    expect(classifyReply(done!)).to.deep.equal({ kind: 'done' });
    expect(classifyReply(failed!)).to.deep.equal({ kind: 'error', errno: 16 });
  });

  it('a multi-part GET_SERVICE reply: two services (one persistent, stats ignored) and DONE', () => {
    const datagram = bytes(
      // IPVS_CMD_NEW_SERVICE, NLM_F_MULTI; the kernel nests without NLA_F_NESTED
      '7c000000 2500 0200 09000000 d2040000', '01 01 0000',
      '6800 0100',
      '0600 0100 0200 0000', '0600 0200 0600 0000', '1400 0300 0a60000a 00000000 00000000 00000000', '0600 0400 0050 0000',
      '0700 0600 727200 00',
      '0c00 0700 02000000 ffffffff', //         flags: HASHED only
      '0800 0800 00000000', '0800 0900 ffffffff',
      '1400 0a00 0800 0100 05000000 0800 0200 07000000', // IPVS_SVC_ATTR_STATS {CONNS 5, INPKTS 7}
      '68000000 2500 0200 09000000 d2040000', '01 01 0000',
      '5400 0100',
      '0600 0100 0200 0000', '0600 0200 1100 0000', '1400 0300 0a600001 00000000 00000000 00000000', '0600 0400 0035 0000',
      '0700 0600 727200 00',
      '0c00 0700 03000000 ffffffff', //         PERSISTENT | HASHED
      '0800 0800 302a0000', '0800 0900 ffffffff',
      '14000000 0300 0200 09000000 d2040000 00000000', // NLMSG_DONE
    );
    const messages = decodeMessages(datagram);
    expect(messages.map((message) => classifyReply(message).kind)).to.deep.equal(['data', 'data', 'done']);
    expect(parseService(messages[0]!)).to.deep.equal({ protocol: 'TCP', address: '10.96.0.10', port: 80, scheduler: 'rr', flags: 2, netmask: 0xffffffff });
    expect(parseService(messages[1]!)).to.deep.equal({ protocol: 'UDP', address: '10.96.0.1', port: 53, scheduler: 'rr', persistenceTimeoutSeconds: 10_800, flags: 3, netmask: 0xffffffff });
  });

  it('a GET_DEST reply becomes a real server', () => {
    const [message] = decodeMessages(
      bytes(
        '5c000000 2500 0200 0a000000 00000000', '05 01 0000',
        '4800 0200',
        '1400 0100 0af40006 00000000 00000000 00000000', '0600 0200 1f90 0000',
        '0800 0300 00000000', '0800 0400 02000000', '0800 0500 00000000', '0800 0600 00000000',
        '0800 0700 03000000', //                  ACTIVE_CONNS 3: read past
      ),
    );
    expect(parseDestination(message!)).to.deep.equal({ address: '10.244.0.6', port: 8080, weight: 2, forward: 'masquerade', upperThreshold: 0, lowerThreshold: 0 });
  });

  it('refuses lengths that do not fit', () => {
    expect(() => decodeMessages(bytes('40000000 0200 0000 01000000 00000000 00000000'))).to.throw(NetlinkFormatError, /nlmsg_len 64/);
    expect(() => decodeAttributes(bytes('0900 0100 0000'))).to.throw(NetlinkFormatError, /nla_len 9/);
    expect(() => classifyReply(decodeMessages(bytes('12000000 0200 0000 01000000 00000000 0000'))[0]!)).to.throw(NetlinkFormatError);
  });

  it('nlctrl: a family description', () => {
    const [message] = decodeMessages(
      bytes('30000000 1000 0000 01000000 00000000', '01 02 0000', '0600 0100 2500 0000', '0900 0200 49505653 00 000000', '0800 0300 01000000'),
    );
    expect(parseFamily(message!)).to.deep.equal({ id: 0x25, name: 'IPVS', version: 1, maxAttribute: 0 });
  });

  it('an encoded message decodes to itself', () => {
    const payload = bytes('01020304 05');
    const [message] = decodeMessages(encodeMessage({ type: 0x30, flags: NLM_F_REQUEST | NLM_F_ACK, seq: 0xfffffffe, pid: 42, payload }));
    expect(message).to.deep.include({ type: 0x30, flags: 5, seq: 0xfffffffe, pid: 42 });
    expect(hexOf(message!.payload)).to.equal('0102030405');
  });
});

describe('proxy: netlink with this kernel', () => {
  it('resolves the controller family "nlctrl" (id 16) through a real socket', () => {
    const socket = NetlinkSocket.open('generic');
    try {
      expect(socket.resolveFamily('nlctrl')).to.include({ id: 16, name: 'nlctrl' });
    } finally {
      socket.close();
    }
  });

  it('"IPVS": either the family resolves and ipvsUsable() says so, or ENOENT and a clear reason', async () => {
    const socket = NetlinkSocket.open('generic');
    let failure: unknown;
    try {
      socket.resolveFamily('IPVS');
    } catch (error) {
      failure = error;
    } finally {
      socket.close();
    }
    const usable = await ipvsUsable();
    if (failure === undefined) {
      expect(usable).to.deep.equal({ usable: true });
      return;
    }
    expect(failure).to.be.instanceOf(NetlinkError);
    expect((failure as NetlinkError).code).to.equal('ENOENT');
    expect((failure as Error).message).to.equal('resolve the generic netlink family "IPVS": ENOENT (no such entry)');
    expect(usable).to.deep.equal({ usable: false, reason: 'the kernel has no IPVS (generic netlink family "IPVS" not found; modprobe ip_vs)' });
  });

  it('rtnetlink: a missing link is ENODEV naming the operation; an address dump ends at DONE and lists 127.0.0.1 on lo', () => {
    const socket = NetlinkSocket.open('route');
    try {
      expect(() => socket.request('look up link mast-no-such0', (seq) => getLinkRequest('mast-no-such0', seq))).to.throw(NetlinkError, /^look up link mast-no-such0: ENODEV/);
      const [lo] = socket.request('look up link lo', (seq) => getLinkRequest('lo', seq));
      expect(lo).to.not.equal(undefined);
      const index = new DataView(lo!.payload.buffer, lo!.payload.byteOffset).getInt32(4, true);
      const addresses = socket.request('list addresses', (seq) => dumpAddressesRequest(seq)).map(parseAddress);
      expect(addresses).to.deep.include({ index, address: '127.0.0.1', prefixLength: 8 });
    } finally {
      socket.close();
    }
  });

  it('skips replies of another sequence number and gives up after the receive timeout', () => {
    const socket = NetlinkSocket.open('generic', { receiveTimeoutMs: 200 });
    try {
      // The kernel acks seq+1000, which this request does not wait for.
      expect(() => socket.request('resolve with a wrong seq', (seq) => getFamilyRequest('nlctrl', seq + 1000))).to.throw(NetlinkError, /ETIMEDOUT.*no reply within 200 ms/);
      // The socket still works afterwards.
      expect(socket.resolveFamily('nlctrl').id).to.equal(16);
    } finally {
      socket.close();
    }
  });

  it('refuses a request that asks for neither an ack nor a dump, and use after close', () => {
    const socket = NetlinkSocket.open('generic');
    const noAck = (seq: number): Uint8Array => encodeMessage({ type: 16, flags: NLM_F_REQUEST, seq, pid: 0, payload: bytes('03010000') });
    expect(() => socket.request('no ack', noAck)).to.throw(/must ask for an ack or a dump/);
    socket.close();
    expect(socket.closed).to.equal(true);
    expect(() => socket.resolveFamily('nlctrl')).to.throw(/closed/);
  });
});
