// Numbered events with increasing ids, kept in a bounded ring so a client that reconnects can ask
// "since id N"; when N has fallen out of the ring the answer says so and the client refetches.
import type { AgentEvent, EventPayloads, EventType } from './contract';

export interface EventLog {
  publish<T extends EventType>(type: T, data: EventPayloads[T]): AgentEvent;
  since(after: number): { events: AgentEvent[]; complete: boolean };
  subscribe(listener: (event: AgentEvent) => void): () => void;
  lastId(): number;
}

export function createEventLog(capacity = 1000, now: () => Date = () => new Date()): EventLog {
  const ring: AgentEvent[] = [];
  const listeners = new Set<(event: AgentEvent) => void>();
  let nextId = 1;

  return {
    publish(type, data) {
      const event = { id: nextId++, at: now().toISOString(), type, data } as AgentEvent;
      ring.push(event);
      if (ring.length > capacity) ring.shift();
      for (const listener of [...listeners]) listener(event);
      return event;
    },
    since(after) {
      const oldest = ring[0]?.id ?? nextId;
      // A client ahead of us (agent restarted) or behind the ring has missed events.
      const complete = after >= oldest - 1 && after < nextId;
      return { events: ring.filter((e) => e.id > after), complete };
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    lastId: () => nextId - 1,
  };
}
