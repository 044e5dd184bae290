// The running agent as the Electron shell sees it: a client over the agent's socket that looks like
// the in-process agent the shell used to build (a router for the IPC adapter, its events, status).
// The tray and the window live and die on their own; the agent keeps running without them, and
// while it is away every call answers 'agent-unreachable' and the tray says "Not connected".
import type { AgentEvent, AgentStatus, MethodName, Reply } from '../common/contract';
import { toErrorInfo, type ErrorInfo } from '../common/errors';
import type { EventLog } from '../common/event-log';
import type { Router } from '../common/router';
import { createSocketClient } from './agent-socket';

export type RemoteAgentChange = 'connected' | 'lost';

export interface RemoteAgent {
  /** Forwards every call to the agent, which validates it; a lost agent answers 'agent-unreachable'. */
  router: Router;
  /** The agent's events as they arrive. No replay: after a change, subscribers refetch. */
  events: Pick<EventLog, 'since' | 'subscribe'>;
  status(): Promise<AgentStatus>;
  /** Whether the event stream to the agent is up, and why not when it is not. */
  connection(): { connected: boolean; error: ErrorInfo | null };
  /** Connected (first time, or again, maybe to a restarted agent: refetch) or lost. */
  onChange(listener: (change: RemoteAgentChange) => void): () => void;
  close(): void;
}

export function createRemoteAgent(socketPath: string, opts: { retryMs?: number } = {}): RemoteAgent {
  const client = createSocketClient(socketPath, opts);
  const eventListeners = new Set<(e: AgentEvent) => void>();
  const changeListeners = new Set<(c: RemoteAgentChange) => void>();
  let state: { connected: boolean; error: ErrorInfo | null } = { connected: false, error: null };
  const changed = (c: RemoteAgentChange) => [...changeListeners].forEach((l) => l(c));

  const unsubscribe = client.subscribe(
    (e) => [...eventListeners].forEach((l) => l(e)),
    () => {
      state = { connected: true, error: null };
      changed('connected');
    },
    (error) => {
      // Called at every failed reconnect: 'lost' only once per loss.
      const was = state.connected;
      state = { connected: false, error };
      if (was) changed('lost');
    },
  );

  return {
    router: {
      async handle(method, args): Promise<Reply> {
        try {
          return { ok: true, result: await client.call(method as MethodName, args as never) };
        } catch (err) {
          return { ok: false, error: toErrorInfo(err) };
        }
      },
    },
    events: {
      since: () => ({ events: [], complete: false }),
      subscribe(listener) {
        eventListeners.add(listener);
        return () => eventListeners.delete(listener);
      },
    },
    status: () => client.call('status.get', {}),
    connection: () => state,
    onChange(listener) {
      changeListeners.add(listener);
      return () => changeListeners.delete(listener);
    },
    close: unsubscribe,
  };
}
