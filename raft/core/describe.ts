// Human-readable renderings of core values, used by scenario scripts, simulator
// traces and logs. Stable output: scenario expectations are recorded with it.

import type { ConfChange, ConfState, Entry, HardState, Message, ProposalPayload, Snapshot } from './types.js';

const textDecoder = new TextDecoder('utf-8', { fatal: false });

export function describeData(data: Uint8Array): string {
  if (data.byteLength === 0) return '';
  const text = textDecoder.decode(data);
  const printable = /^[\x20-\x7e]*$/.test(text);
  if (printable && data.byteLength <= 32) return JSON.stringify(text);
  return `<${data.byteLength} bytes>`;
}

export function describeConfChange(change: ConfChange): string {
  return `${change.type} ${change.nodeId}`;
}

export function describeEntry(entry: Entry): string {
  const head = `${entry.term}/${entry.index}`;
  if (entry.kind === 'conf-change') return `${head} conf(${describeConfChange(entry.change)})`;
  const data = describeData(entry.data);
  return data === '' ? `${head} empty` : `${head} ${data}`;
}

export function describePayload(payload: ProposalPayload): string {
  return payload.kind === 'conf-change' ? `conf(${describeConfChange(payload.change)})` : describeData(payload.data);
}

export function describeConf(conf: ConfState): string {
  const voters = `voters=(${[...conf.voters].sort((a, b) => a - b).join(' ')})`;
  if (conf.learners.length === 0) return voters;
  return `${voters} learners=(${[...conf.learners].sort((a, b) => a - b).join(' ')})`;
}

export function describeHardState(hardState: HardState): string {
  return `term=${hardState.term} vote=${hardState.vote} commit=${hardState.commit}`;
}

export function describeSnapshot(snapshot: Snapshot): string {
  const meta = snapshot.meta;
  return `snapshot(index=${meta.index} term=${meta.term} ${describeConf(meta.conf)} ${describeData(snapshot.data) || 'empty'})`;
}

export function describeMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.kind} term=${m.term}`;
  switch (m.kind) {
    case 'pre-vote':
      return `${head} last=(${m.lastLogTerm}/${m.lastLogIndex})`;
    case 'vote':
      return `${head} last=(${m.lastLogTerm}/${m.lastLogIndex})${m.transfer ? ' transfer' : ''}`;
    case 'pre-vote-response':
    case 'vote-response':
      return `${head} ${m.granted ? 'granted' : 'rejected'}`;
    case 'append': {
      const entries = m.entries.length === 0 ? '' : ` entries=[${m.entries.map(describeEntry).join(', ')}]`;
      return `${head} prev=(${m.prevTerm}/${m.prevIndex}) commit=${m.commit}${entries}`;
    }
    case 'append-response':
      return m.reject
        ? `${head} reject index=${m.index} hint=(${m.hintTerm}/${m.hintIndex})`
        : `${head} index=${m.index}`;
    case 'heartbeat':
      return `${head} commit=${m.commit}${m.context === '' ? '' : ` context=${m.context}`}`;
    case 'heartbeat-response':
      return m.context === '' ? head : `${head} context=${m.context}`;
    case 'snapshot':
      return `${head} ${describeSnapshot(m.snapshot)}`;
    case 'timeout-now':
      return head;
    case 'propose':
      return `${head} [${m.entries.map(describePayload).join(', ')}]`;
    case 'read-index':
      return `${head} context=${m.context}`;
    case 'read-index-response':
      return `${head} context=${m.context} index=${m.index}`;
  }
}
