// Recording Events, as client-go's EventRecorder does: an event about an
// object ("Scheduled", "Killing", "GarbageCollected"...) is an Event object
// in the object's namespace. The same event again (same object, reason,
// message, type and source) does not make a new object: the existing one's
// count and lastTimestamp go up, so a crash-looping pod shows
// "Back-off restarting (x12)" instead of twelve rows. Recording never fails
// the caller: events are best effort, their errors only logged.

import type { KubeObject, ResourceClient } from './resources.js';

/** Where events go: the resource API, or the registry inside a master. */
export interface EventSink {
  create(event: EventObject): Promise<unknown>;
  /** Replace the event (its metadata.resourceVersion pins the version it was read at). */
  update(event: EventObject): Promise<unknown>;
  get(namespace: string, name: string): Promise<EventObject>;
}

export interface InvolvedObject {
  readonly apiVersion?: string;
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  readonly uid?: string;
}

export type EventType = 'Normal' | 'Warning';

export interface EventObject {
  apiVersion: 'v1';
  kind: 'Event';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  involvedObject: { apiVersion?: string; kind: string; namespace?: string; name: string; uid?: string };
  reason: string;
  message: string;
  type: EventType;
  source: { component: string; host?: string };
  firstTimestamp: string;
  lastTimestamp: string;
  count: number;
  reportingComponent: string;
  reportingInstance: string;
}

export interface EventRecorderOptions {
  /** Who reports: "garbage-collector", "scheduler", "kubelet"... */
  readonly component: string;
  /** Which instance of it (a master's or node's name). */
  readonly host: string;
  readonly now?: () => Date;
  readonly log?: (message: string) => void;
  /** How many distinct events the recorder remembers for aggregation (the oldest are forgotten first). */
  readonly maxRemembered?: number;
}

const DEFAULT_MAX_REMEMBERED = 4096;

function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A name Kubernetes would give: the object's name, then a unique suffix (hex of the time). */
function eventName(object: InvolvedObject, now: Date, sequence: number): string {
  const base = object.name.length > 200 ? object.name.slice(0, 200) : object.name;
  return `${base}.${(now.getTime() * 1000 + (sequence % 1000)).toString(16)}`;
}

export class EventRecorder {
  private readonly now: () => Date;
  /** aggregation key → namespace/name of the Event object that counts it. */
  private readonly recorded = new Map<string, { namespace: string; name: string }>();
  private sequence = 0;
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly sink: EventSink,
    private readonly options: EventRecorderOptions,
  ) {
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Record an event about `object`. Returns when it is written (or given
   * up on); callers need not wait. Events are written one at a time, in order.
   */
  record(object: InvolvedObject, type: EventType, reason: string, message: string): Promise<void> {
    const run = this.tail.then(() => this.write(object, type, reason, message));
    this.tail = run.catch(() => {});
    return this.tail;
  }

  private async write(object: InvolvedObject, type: EventType, reason: string, message: string): Promise<void> {
    const namespace = object.namespace === undefined || object.namespace === '' ? 'default' : object.namespace;
    const key = JSON.stringify([object.kind, namespace, object.name, object.uid ?? '', type, reason, message]);
    const now = rfc3339(this.now());
    const known = this.recorded.get(key);
    try {
      if (known !== undefined && (await this.bump(known, now))) return;
      const event: EventObject = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: eventName(object, this.now(), this.sequence++), namespace },
        involvedObject: { ...(object.apiVersion === undefined ? {} : { apiVersion: object.apiVersion }), kind: object.kind, ...(object.namespace ? { namespace: object.namespace } : {}), name: object.name, ...(object.uid === undefined ? {} : { uid: object.uid }) },
        reason,
        message,
        type,
        source: { component: this.options.component, host: this.options.host },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        reportingComponent: this.options.component,
        reportingInstance: this.options.host,
      };
      await this.sink.create(event);
      this.remember(key, { namespace, name: event.metadata.name });
    } catch (error) {
      this.options.log?.(`event ${reason} about ${object.kind} ${namespace}/${object.name} not recorded: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** Count one more of an event already recorded; false if it is gone (a new one is made). */
  private async bump(known: { namespace: string; name: string }, now: string): Promise<boolean> {
    let existing: EventObject;
    try {
      existing = await this.sink.get(known.namespace, known.name);
    } catch {
      return false;
    }
    await this.sink.update({ ...existing, count: (existing.count ?? 1) + 1, lastTimestamp: now });
    return true;
  }

  private remember(key: string, where: { namespace: string; name: string }): void {
    this.recorded.set(key, where);
    const limit = this.options.maxRemembered ?? DEFAULT_MAX_REMEMBERED;
    if (this.recorded.size > limit) this.recorded.delete(this.recorded.keys().next().value as string);
  }
}

/** Events written through the resource API (as a controller or agent, with its client's identity and fence). */
export function clientEventSink(client: Pick<ResourceClient, 'create' | 'update' | 'get'>): EventSink {
  return {
    create: (event) => client.create('Event', event),
    update: (event) => client.update('Event', event as unknown as KubeObject),
    get: async (namespace, name) => (await client.get('Event', namespace, name)) as unknown as EventObject,
  };
}
