// ApiClient implementations for each transport. They share the contract types and unwrap replies
// the same way, so a TabulaError thrown in the agent is the same TabulaError in every client.
import { agentProof, newNonce } from './agent-proof';
import type { AgentEvent, ApiClient, MethodName, Reply } from './contract';
import { TabulaError, type ErrorInfo } from './errors';
import type { EventLog } from './event-log';
import type { Router } from './router';
import { unwrap } from './router';

/** In-process, for the CLI's foreground commands and for tests. JSON round trip: what crosses must be data. */
export function createInProcessClient(router: Router, events: EventLog): ApiClient {
  const wire = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
  return {
    async call(method, args) {
      return unwrap(wire(await router.handle(method, wire(args)))) as never;
    },
    subscribe(onEvent, onReset) {
      onReset?.();
      return events.subscribe((e) => onEvent(wire(e)));
    },
  };
}

// ---- Electron IPC ---------------------------------------------------------------------------

export const ipcChannels = { call: 'tabula:call', subscribe: 'tabula:subscribe', event: 'tabula:event' } as const;

/** The one object the sandboxed preload exposes to the page through contextBridge. */
export interface TabulaBridge {
  call(method: string, args: unknown): Promise<Reply>;
  /** Starts pushing events after `after` to `listener`; resolves with whether the replay was complete. */
  subscribe(after: number, listener: (event: AgentEvent) => void): Promise<{ complete: boolean }>;
}

export interface IpcRendererLike {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): void;
}

/** Runs in the preload: exposes exactly call and subscribe, never ipcRenderer itself. */
export function createPreloadBridge(ipc: IpcRendererLike): TabulaBridge {
  let listener: ((event: AgentEvent) => void) | null = null;
  ipc.on(ipcChannels.event, (_e, event) => listener?.(event as AgentEvent));
  return {
    call: (method, args) => ipc.invoke(ipcChannels.call, String(method), args) as Promise<Reply>,
    subscribe(after, fn) {
      listener = fn;
      return ipc.invoke(ipcChannels.subscribe, Number(after)) as Promise<{ complete: boolean }>;
    },
  };
}

export function createBridgeClient(bridge: TabulaBridge): ApiClient {
  return {
    async call(method, args) {
      return unwrap(await bridge.call(method, args)) as never;
    },
    subscribe(onEvent, onReset) {
      let active = true;
      // -1: no replay; we refetch the whole state instead (onReset).
      void bridge.subscribe(-1, (e) => active && onEvent(e)).then(() => active && onReset?.());
      return () => {
        active = false;
      };
    },
  };
}

// ---- HTTP + Server-Sent Events --------------------------------------------------------------

export interface HttpClientOptions {
  baseUrl: string;
  token: string;
  fetch?: typeof fetch;
  /** Delay before reconnecting the event stream after it dropped. */
  retryMs?: number;
  /** Where the agent is, for messages (baseUrl unless the fetch goes elsewhere, e.g. a unix socket). */
  where?: string;
  /** Send the token only to an address that proved it is the agent (a TCP port another user could take). */
  verifyAgent?: boolean;
}

export function createHttpClient({ baseUrl, token, fetch: doFetch = fetch, retryMs = 1000, where = baseUrl, verifyAgent = false }: HttpClientOptions): ApiClient {
  const headers = { authorization: `Bearer ${token}` };
  const unreachable = (err: unknown) =>
    err instanceof TabulaError
      ? err
      : new TabulaError('agent-unreachable', `Not connected to the Tabula agent: nothing answers at ${where} (${err instanceof Error ? err.message : String(err)}).`, {
          retryable: true,
        });

  // Asked before every request: a TCP port left by a stopped agent can be taken by anyone meanwhile.
  async function proveAgent() {
    const nonce = newNonce();
    const res = await doFetch(`${baseUrl}/api/hello?nonce=${nonce}`);
    const body = (await res.json().catch(() => null)) as { proof?: unknown } | null;
    if (body?.proof !== (await agentProof(token, Number(new URL(baseUrl).port || 80), nonce))) {
      throw new TabulaError('agent-unreachable', `Not connected to the Tabula agent: what answers at ${where} could not prove it is the agent, so this window did not send it its token.`, {
        retryable: true,
      });
    }
  }

  async function call(method: MethodName, args: unknown) {
    let res: Response;
    try {
      if (verifyAgent) await proveAgent();
      res = await doFetch(`${baseUrl}/api/call/${encodeURIComponent(method)}`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify(args ?? {}),
      });
    } catch (err) {
      throw unreachable(err);
    }
    return unwrap((await res.json()) as Reply) as never;
  }

  function subscribe(onEvent: (e: AgentEvent) => void, onReset?: () => void, onDrop?: (error: ErrorInfo) => void) {
    const abort = new AbortController();
    let after = -1; // -1: we know nothing yet, the server answers with a reset
    void (async () => {
      while (!abort.signal.aborted) {
        try {
          if (verifyAgent) await proveAgent();
          const res = await doFetch(`${baseUrl}/api/events?after=${after}`, { headers, signal: abort.signal });
          if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
          await readSse(res.body, (type, data) => {
            if (type === 'reset') {
              after = Number(JSON.parse(data).lastId);
              onReset?.();
            } else {
              const event = JSON.parse(data) as AgentEvent;
              after = event.id;
              onEvent(event);
            }
          });
          throw new Error('the agent closed the connection');
        } catch (err) {
          // Dropped or refused: say so, and after reconnecting start from a reset (a refetch), so
          // the subscriber knows it is connected again and has the whole state.
          if (!abort.signal.aborted) {
            after = -1;
            onDrop?.(unreachable(err).toInfo());
          }
        }
        if (!abort.signal.aborted) await new Promise((r) => setTimeout(r, retryMs));
      }
    })();
    return () => abort.abort();
  }

  return { call, subscribe };
}

async function readSse(body: ReadableStream<Uint8Array>, onMessage: (type: string, data: string) => void) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) type = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length) onMessage(type, data.join('\n'));
    }
  }
}
