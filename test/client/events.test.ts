// The event recorder: one Event object per distinct event, counted up when
// it happens again; failures logged, never thrown.

import { expect } from 'chai';
import { EventRecorder, type EventObject, type EventSink } from '../../services/client/events.js';

class MemorySink implements EventSink {
  readonly events = new Map<string, EventObject>();
  failNext = false;
  private version = 0;

  async create(event: EventObject): Promise<unknown> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('the API is down');
    }
    const key = `${event.metadata.namespace}/${event.metadata.name}`;
    if (this.events.has(key)) throw new Error(`${key} already exists`);
    this.events.set(key, { ...event, metadata: { ...event.metadata, resourceVersion: String(++this.version) } });
    return event;
  }

  async update(event: EventObject): Promise<unknown> {
    this.events.set(`${event.metadata.namespace}/${event.metadata.name}`, { ...event, metadata: { ...event.metadata, resourceVersion: String(++this.version) } });
    return event;
  }

  async get(namespace: string, name: string): Promise<EventObject> {
    const found = this.events.get(`${namespace}/${name}`);
    if (found === undefined) throw new Error('not found');
    return found;
  }
}

describe('client: the event recorder', function () {
  it('aggregates the same event into a count and keeps distinct ones apart', async function () {
    const sink = new MemorySink();
    let clock = Date.parse('2026-11-25T12:00:00Z');
    const recorder = new EventRecorder(sink, { component: 'kubelet', host: 'n1', now: () => new Date(clock) });
    const pod = { apiVersion: 'v1', kind: 'Pod', namespace: 'web', name: 'web-0', uid: 'u1' };
    await recorder.record(pod, 'Warning', 'BackOff', 'Back-off restarting failed container');
    clock += 10_000;
    await recorder.record(pod, 'Warning', 'BackOff', 'Back-off restarting failed container');
    await recorder.record(pod, 'Normal', 'Pulled', 'Container image "busybox" already present');
    const events = [...sink.events.values()];
    expect(events).to.have.length(2);
    const backOff = events.find((event) => event.reason === 'BackOff')!;
    expect(backOff).to.deep.include({ count: 2, firstTimestamp: '2026-11-25T12:00:00Z', lastTimestamp: '2026-11-25T12:00:10Z', type: 'Warning' });
    expect(backOff.metadata.namespace).to.equal('web');
    expect(backOff.metadata.name).to.match(/^web-0\.[0-9a-f]+$/);
    expect(backOff.source).to.deep.equal({ component: 'kubelet', host: 'n1' });
    expect(backOff.involvedObject).to.deep.equal({ apiVersion: 'v1', kind: 'Pod', namespace: 'web', name: 'web-0', uid: 'u1' });
  });

  it('logs what it could not record and carries on', async function () {
    const sink = new MemorySink();
    const logged: string[] = [];
    const recorder = new EventRecorder(sink, { component: 'scheduler', host: 'm1', log: (line) => logged.push(line) });
    sink.failNext = true;
    await recorder.record({ kind: 'Pod', namespace: 'default', name: 'p' }, 'Warning', 'FailedScheduling', '0/3 nodes are available');
    await recorder.record({ kind: 'Pod', namespace: 'default', name: 'p' }, 'Normal', 'Scheduled', 'Successfully assigned default/p to n1');
    expect(logged).to.deep.equal(['event FailedScheduling about Pod default/p not recorded: the API is down']);
    expect([...sink.events.values()].map((event) => event.reason)).to.deep.equal(['Scheduled']);
  });
});
