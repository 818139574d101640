// Conversion between the core's messages and their protobuf wire form
// (proto/raft.proto). Decoding validates: a peer that sends a malformed
// message gets a WireFormatError naming the field, never a half-built message.

import type { ConfChange, ConfState, Entry, Message, MessageBody, ProposalPayload, Snapshot, SnapshotMeta } from '../core/index.js';
import * as wire from '../../proto/gen/raft.js';

export class WireFormatError extends Error {
  override readonly name = 'WireFormatError';
}

const EMPTY = new Uint8Array(0);

const asBuffer = (data: Uint8Array): Buffer => Buffer.from(data.buffer, data.byteOffset, data.byteLength);

const CHANGE_TO_WIRE = {
  'add-voter': wire.ConfChange_Type.TYPE_ADD_VOTER,
  'add-learner': wire.ConfChange_Type.TYPE_ADD_LEARNER,
  remove: wire.ConfChange_Type.TYPE_REMOVE,
} as const;

function confChangeToWire(change: ConfChange): wire.ConfChange {
  return { type: CHANGE_TO_WIRE[change.type], nodeId: change.nodeId, context: asBuffer(change.context ?? EMPTY) };
}

const CHANGE_FROM_WIRE = new Map<wire.ConfChange_Type, ConfChange['type']>(Object.entries(CHANGE_TO_WIRE).map(([type, code]) => [code, type as ConfChange['type']]));

function confChangeFromWire(change: wire.ConfChange): ConfChange {
  const type = CHANGE_FROM_WIRE.get(change.type);
  if (type === undefined) throw new WireFormatError(`conf change has unknown type ${String(change.type)}`);
  return change.context.byteLength > 0 ? { type, nodeId: change.nodeId, context: change.context } : { type, nodeId: change.nodeId };
}

function entryToWire(entry: Entry): wire.Entry {
  return {
    term: entry.term,
    index: entry.index,
    payload:
      entry.kind === 'normal'
        ? { $case: 'data', value: asBuffer(entry.data) }
        : { $case: 'confChange', value: confChangeToWire(entry.change) },
  };
}

function entryFromWire(entry: wire.Entry): Entry {
  const payload = entry.payload;
  // proto3 drops empty bytes: an entry without a payload is an empty normal entry.
  if (payload === undefined || payload.$case === 'data') {
    return { kind: 'normal', term: entry.term, index: entry.index, data: payload?.value ?? new Uint8Array(0) };
  }
  return { kind: 'conf-change', term: entry.term, index: entry.index, change: confChangeFromWire(payload.value) };
}

function payloadToWire(payload: ProposalPayload): wire.ProposalPayload {
  return {
    payload:
      payload.kind === 'normal'
        ? { $case: 'data', value: asBuffer(payload.data) }
        : { $case: 'confChange', value: confChangeToWire(payload.change) },
  };
}

function payloadFromWire(payload: wire.ProposalPayload): ProposalPayload {
  const value = payload.payload;
  if (value === undefined || value.$case === 'data') return { kind: 'normal', data: value?.value ?? new Uint8Array(0) };
  return { kind: 'conf-change', change: confChangeFromWire(value.value) };
}

function confStateFromWire(conf: wire.ConfState | undefined): ConfState {
  return { voters: conf?.voters ?? [], learners: conf?.learners ?? [] };
}

export function snapshotMetaToWire(meta: SnapshotMeta): wire.SnapshotMeta {
  return { index: meta.index, term: meta.term, conf: { voters: [...meta.conf.voters], learners: [...meta.conf.learners] } };
}

export function snapshotMetaFromWire(meta: wire.SnapshotMeta): SnapshotMeta {
  return { index: meta.index, term: meta.term, conf: confStateFromWire(meta.conf) };
}

function snapshotToWire(snapshot: Snapshot): wire.Snapshot {
  return { meta: snapshotMetaToWire(snapshot.meta), data: asBuffer(snapshot.data) };
}

function snapshotFromWire(snapshot: wire.Snapshot | undefined): Snapshot {
  const meta = snapshot?.meta;
  if (snapshot === undefined || meta === undefined) throw new WireFormatError('snapshot message without snapshot metadata');
  return { meta: snapshotMetaFromWire(meta), data: snapshot.data };
}

export function messageToWire(message: Message): wire.Message {
  const envelope = { from: message.from, to: message.to, term: message.term };
  return { ...envelope, body: bodyToWire(message) };
}

function bodyToWire(m: Message): wire.Message['body'] {
  switch (m.kind) {
    case 'pre-vote':
      return { $case: 'preVote', value: { lastLogIndex: m.lastLogIndex, lastLogTerm: m.lastLogTerm, transfer: false } };
    case 'vote':
      return { $case: 'vote', value: { lastLogIndex: m.lastLogIndex, lastLogTerm: m.lastLogTerm, transfer: m.transfer } };
    case 'pre-vote-response':
      return { $case: 'preVoteResponse', value: { granted: m.granted } };
    case 'vote-response':
      return { $case: 'voteResponse', value: { granted: m.granted } };
    case 'append':
      return { $case: 'append', value: { prevIndex: m.prevIndex, prevTerm: m.prevTerm, entries: m.entries.map(entryToWire), commit: m.commit } };
    case 'append-response':
      return { $case: 'appendResponse', value: { index: m.index, reject: m.reject, hintIndex: m.hintIndex, hintTerm: m.hintTerm } };
    case 'heartbeat':
      return { $case: 'heartbeat', value: { commit: m.commit, context: m.context } };
    case 'heartbeat-response':
      return { $case: 'heartbeatResponse', value: { context: m.context } };
    case 'snapshot':
      return { $case: 'snapshot', value: { snapshot: snapshotToWire(m.snapshot) } };
    case 'timeout-now':
      return { $case: 'timeoutNow', value: {} };
    case 'propose':
      return { $case: 'propose', value: { entries: m.entries.map(payloadToWire) } };
    case 'read-index':
      return { $case: 'readIndex', value: { context: m.context } };
    case 'read-index-response':
      return { $case: 'readIndexResponse', value: { context: m.context, index: m.index } };
  }
}

export function messageFromWire(message: wire.Message): Message {
  if (message.from === 0 || message.to === 0) throw new WireFormatError(`message from ${message.from} to ${message.to}: ids must be non-zero`);
  const envelope = { from: message.from, to: message.to, term: message.term };
  return { ...envelope, ...bodyFromWire(message.body) } as Message;
}

function bodyFromWire(body: wire.Message['body']): MessageBody {
  if (body === undefined) throw new WireFormatError('message without a body');
  switch (body.$case) {
    case 'preVote':
      return { kind: 'pre-vote', lastLogIndex: body.value.lastLogIndex, lastLogTerm: body.value.lastLogTerm };
    case 'vote':
      return { kind: 'vote', lastLogIndex: body.value.lastLogIndex, lastLogTerm: body.value.lastLogTerm, transfer: body.value.transfer };
    case 'preVoteResponse':
      return { kind: 'pre-vote-response', granted: body.value.granted };
    case 'voteResponse':
      return { kind: 'vote-response', granted: body.value.granted };
    case 'append':
      return { kind: 'append', prevIndex: body.value.prevIndex, prevTerm: body.value.prevTerm, entries: body.value.entries.map(entryFromWire), commit: body.value.commit };
    case 'appendResponse':
      return { kind: 'append-response', index: body.value.index, reject: body.value.reject, hintIndex: body.value.hintIndex, hintTerm: body.value.hintTerm };
    case 'heartbeat':
      return { kind: 'heartbeat', commit: body.value.commit, context: body.value.context };
    case 'heartbeatResponse':
      return { kind: 'heartbeat-response', context: body.value.context };
    case 'snapshot':
      return { kind: 'snapshot', snapshot: snapshotFromWire(body.value.snapshot) };
    case 'timeoutNow':
      return { kind: 'timeout-now' };
    case 'propose':
      return { kind: 'propose', entries: body.value.entries.map(payloadFromWire) };
    case 'readIndex':
      return { kind: 'read-index', context: body.value.context };
    case 'readIndexResponse':
      return { kind: 'read-index-response', context: body.value.context, index: body.value.index };
  }
}

export function encodeMessage(message: Message): Uint8Array {
  return wire.Message.encode(messageToWire(message)).finish();
}

export function decodeMessage(bytes: Uint8Array): Message {
  let decoded: wire.Message;
  try {
    decoded = wire.Message.decode(bytes);
  } catch (error) {
    throw new WireFormatError(`undecodable raft message of ${bytes.byteLength} bytes`, { cause: error });
  }
  return messageFromWire(decoded);
}
