// The one contract between the agent and every client (Electron IPC, HTTP + SSE, in-process).
// Every method has an argument schema (validated at the boundary) and a result type; every event
// has a type and a payload. A method added here is served by every transport.
import { z } from 'zod';
import { fleetMethods, type FleetEventPayloads } from './fleet';
import { helpdeskMethods, type HelpdeskEventPayloads, type ReimageStatus } from './helpdesk';
import { imageMethods, type ImageEventPayloads, type ImageUpdateStatus } from './image';
import type { ErrorInfo } from '../errors';
import { method, noArgs } from './method';
import { prefsMethods, type PrefsEventPayloads } from './prefs';
import { syncMethods, type BackupStatus, type SyncEventPayloads } from './sync';

export * from './sync';

// ---- Domain types ---------------------------------------------------------------------------

export interface ImageStatus {
  /** Human name of the OS image, e.g. "Tabula Workstation". */
  name: string;
  /** IMAGE_ID, falling back to ID. */
  id: string | null;
  /** IMAGE_VERSION, falling back to VERSION_ID; "unknown" when neither is set. */
  version: string;
  /** Where this was read from. */
  source: string;
  /** Set when os-release could not be read; the rest are then placeholders. */
  problem: string | null;
}

export interface ConfigProblem {
  file: string;
  message: string;
}

export interface AgentStatus {
  hostname: string;
  agentVersion: string;
  image: ImageStatus;
  backup: BackupStatus;
  /** OS image updates (contract/image.ts). */
  imageUpdate: ImageUpdateStatus;
  /** Config files that were ignored (corrupt, invalid), and why. */
  problems: ConfigProblem[];
  /** The helpdesk reset, when this agent runs the helpdesk (a fleet reimage may be waiting for a backup). */
  reimage?: ReimageStatus | null;
  /** The id of the last event published when this was taken: a client applies later events on top. */
  lastEventId: number;
}

// ---- Events ---------------------------------------------------------------------------------

export interface EventPayloads extends SyncEventPayloads, PrefsEventPayloads, ImageEventPayloads, HelpdeskEventPayloads, FleetEventPayloads {}
export type EventType = keyof EventPayloads;
export type AgentEvent = { [T in EventType]: { id: number; at: string; type: T; data: EventPayloads[T] } }[EventType];

// ---- Methods --------------------------------------------------------------------------------

/** The agent's own methods: the whole status, and the event stream. */
export const agentMethods = {
  'status.get': method<AgentStatus>()(noArgs),
  /** Events after id `after`; `complete: false` means some were dropped: refetch the whole state. */
  'events.since': method<{ events: AgentEvent[]; complete: boolean }>()(
    z.object({ after: z.number().int().min(0) }).strict(),
  ),
};

export const methods = {
  ...agentMethods,
  ...syncMethods,
  ...prefsMethods,
  ...imageMethods,
  ...helpdeskMethods,
  ...fleetMethods,
};

export type MethodName = keyof typeof methods;
export type MethodArgs<M extends MethodName> = z.input<(typeof methods)[M]['args']>;
export type MethodResult<M extends MethodName> = NonNullable<(typeof methods)[M]['result']>;
export type Handlers = { [M in MethodName]: (args: z.output<(typeof methods)[M]['args']>) => Promise<MethodResult<M>> | MethodResult<M> };

export function isMethodName(name: string): name is MethodName {
  return Object.prototype.hasOwnProperty.call(methods, name);
}

/** What a call returns on the wire, whatever carries it. */
export type Reply<R = unknown> = { ok: true; result: R } | { ok: false; error: ErrorInfo };

/** The client side, identical for every transport. */
export interface ApiClient {
  call<M extends MethodName>(method: M, args: MethodArgs<M>): Promise<MethodResult<M>>;
  /**
   * Follows the event stream. `onReset` is called when events may have been missed (first connect,
   * reconnect after a gap): the subscriber should refetch the whole state. `onDrop` is called when the
   * stream is lost (agent stopped, restarted, or refusing us), with the reason; reconnecting goes on
   * by itself, and a reset follows once it is back.
   */
  subscribe(onEvent: (event: AgentEvent) => void, onReset?: () => void, onDrop?: (error: ErrorInfo) => void): () => void;
}
