// The one contract between the agent and every client (Electron IPC, HTTP + SSE, in-process).
// Every method has an argument schema (validated at the boundary) and a result type; every event
// has a type and a payload. A method added here is served by every transport.
import { z } from 'zod';
import { fleetMethods, helpdeskMethods, imageMethods, type ImageEventPayloads, type ImageUpdateStatus } from './image';
import type { ErrorInfo } from '../errors';
import { method, noArgs } from './method';
import { prefsMethods, type PrefsEventPayloads } from './prefs';

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

/**
 * never: no sync has run yet; idle: all synced; running; failed: the last run failed (reason says
 * why); offline: the storage cannot be reached and requests wait in the queue; paused: by the person;
 * attention: conflicts to settle, or a sync refused for safety; deferred: automatic runs wait for an
 * unmetered network or enough battery ("Back up now" still runs).
 */
export type BackupState = 'never' | 'idle' | 'running' | 'failed' | 'offline' | 'paused' | 'attention' | 'deferred';

export interface ConflictInfo {
  path: string;
  /** Where the other version lives now (on both sides). */
  conflictPath: string;
  /** Whose version kept the name: this laptop's ("local") or the storage's ("remote"). */
  kept: 'local' | 'remote';
  at: string;
  /** The laptop that wrote the storage's version, when known. */
  from?: string;
  /** Both versions as they are in the home now (added by the agent's status; absent when a file is gone). */
  versions?: { thisLaptop: ConflictVersion | null; storage: ConflictVersion | null };
}

export interface ConflictVersion {
  /** Home-relative path of this version now. */
  path: string;
  size: number;
  modifiedAt: string;
  /** The laptop it came from, when known. */
  host: string | null;
}

export interface FileVersion {
  /** When this content was replaced or deleted on the storage; null for the storage's current copy. */
  replacedAt: string | null;
  stamp: string | null;
}

export interface BackupProgress {
  phase: 'listing' | 'comparing' | 'pulling' | 'pushing';
  bytesDone: number;
  /** Estimated from rsync's overall percentage; null until known. */
  bytesTotal: number | null;
  percent: number;
  /** Estimated time left, when rsync knows it. */
  etaSeconds: number | null;
  filesDone: number;
  filesTotal: number | null;
  currentFile: string | null;
}

export type RunOutcome = 'success' | 'failed' | 'cancelled';

export interface BackupRun {
  id: string;
  startedAt: string;
  finishedAt: string;
  outcome: RunOutcome;
  /** Files actually copied, both ways (unchanged files are not counted). */
  filesTransferred: number;
  pulled: number;
  pushed: number;
  deleted: number;
  conflicts: number;
  bytesTransferred: number;
  storage: string;
  error: ErrorInfo | null;
}

export interface BackupStatus {
  state: BackupState;
  /** A sentence a person can read, for every state. */
  reason: string;
  /** When this state was entered (ISO). */
  since: string;
  lastSuccessAt: string | null;
  lastRun: BackupRun | null;
  progress: BackupProgress | null;
  /** The configured storage, for display (no secrets). */
  storage: string;
  /**
   * The storage is Tabula's built-in folder on this laptop's own disk (nothing configured): a copy,
   * not a backup. The window and tray say "Local copy only", never "Safe".
   */
  localOnly: boolean;
  paused: boolean;
  /** Changes in the home not yet on the storage (known when offline or after a failed run). */
  /** Changes in the home not on the storage yet; null when they could not be counted (not zero). */
  queuedChanges: number | null;
  /** When the next attempt runs by itself (offline retry or schedule). */
  nextAttemptAt: string | null;
  conflicts: ConflictInfo[];
  /** When a sync was refused for safety: what it would have deleted. */
  wouldDelete: string[];
  excludes: string[];
  bandwidthLimitKBps: number;
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
}

// ---- Events ---------------------------------------------------------------------------------

export interface EventPayloads extends PrefsEventPayloads, ImageEventPayloads {
  /** Syncthing-style: entering a state always comes with its reason and how long the last one lasted. */
  'backup-state-changed': { from: BackupState; to: BackupState; reason: string; durationMs: number; status: BackupStatus };
  'backup-progress': BackupProgress;
  'backup-finished': BackupRun;
}
export type EventType = keyof EventPayloads;
export type AgentEvent = { [T in EventType]: { id: number; at: string; type: T; data: EventPayloads[T] } }[EventType];

// ---- Methods --------------------------------------------------------------------------------

/** The home sync's part of the contract. */
export const syncMethods = {
  /** Queues a sync and starts it when the storage is reachable; `force` overrides the safety refusals. */
  'backup.start': method<{ queued: boolean; requestedAt: string }>()(z.object({ force: z.boolean().optional() }).strict()),
  'backup.cancel': method<{ cancelled: boolean }>()(noArgs),
  'backup.pause': method<BackupStatus>()(noArgs),
  'backup.resume': method<BackupStatus>()(noArgs),
  'backup.settings': method<BackupStatus>()(
    z.object({ excludes: z.array(z.string().min(1).max(500)).max(500).optional(), bandwidthLimitKBps: z.number().int().min(0).max(10_000_000).optional() }).strict(),
  ),
  /** Opens one version of a conflict with the desktop's default app, or shows it in the file manager. */
  'conflicts.open': method<{ opened: string }>()(
    z.object({ path: z.string().min(1).max(4096), side: z.enum(['this-laptop', 'storage']), reveal: z.boolean() }).strict(),
  ),
  'conflicts.resolve': method<{ resolved: string }>()(z.object({ path: z.string().min(1), keep: z.enum(['mine', 'theirs', 'both']) }).strict()),
  'versions.list': method<FileVersion[]>()(z.object({ path: z.string().min(1) }).strict()),
  'versions.restore': method<{ restoredTo: string; version: FileVersion }>()(
    z.object({ path: z.string().min(1), at: z.string().datetime({ offset: true }).optional(), to: z.string().min(1).optional() }).strict(),
  ),
  'backup.history': method<BackupRun[]>()(z.object({ limit: z.number().int().min(1).max(1000).optional() }).strict()),
};

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
