// The Electron IPC transport, main side, written against an IPC-like interface so the same code is
// driven by Electron's ipcMain in the shell and by an in-memory pair in the contract tests.
import { ipcChannels } from '../common/clients';
import type { AgentEvent } from '../common/contract';
import type { EventLog } from '../common/event-log';
import type { Router } from '../common/router';

export interface WebContentsLike {
  id: number;
  send(channel: string, ...args: unknown[]): void;
  isDestroyed(): boolean;
  once(event: 'destroyed', listener: () => void): void;
}

export interface IpcMainEventLike {
  sender: WebContentsLike;
  senderFrame?: { url: string } | null;
}

export interface IpcMainLike {
  handle(channel: string, listener: (event: IpcMainEventLike, ...args: unknown[]) => unknown): void;
}

/**
 * `isTrustedSender` checks where a call comes from (our own window and page, never a navigated or
 * foreign frame); untrusted calls are refused before any argument is looked at.
 */
export function serveIpc(ipc: IpcMainLike, router: Router, events: Pick<EventLog, 'since' | 'subscribe'>, isTrustedSender: (e: IpcMainEventLike) => boolean) {
  const refused = { ok: false, error: { code: 'unauthorized', message: 'This window may not talk to Tabula.', retryable: false } };
  const subscribers = new Map<number, () => void>();

  ipc.handle(ipcChannels.call, (event, method, args) => {
    if (!isTrustedSender(event) || typeof method !== 'string') return refused;
    return router.handle(method, args);
  });

  ipc.handle(ipcChannels.subscribe, (event, after) => {
    if (!isTrustedSender(event)) return refused;
    const wc = event.sender;
    subscribers.get(wc.id)?.();
    const send = (e: AgentEvent) => {
      if (!wc.isDestroyed()) wc.send(ipcChannels.event, e);
    };
    const replay = typeof after === 'number' && Number.isInteger(after) && after >= 0 ? events.since(after) : { events: [], complete: false };
    if (replay.complete) replay.events.forEach(send);
    const unsubscribe = events.subscribe(send);
    subscribers.set(wc.id, unsubscribe);
    wc.once('destroyed', () => {
      unsubscribe();
      subscribers.delete(wc.id);
    });
    return { complete: replay.complete };
  });
}
