// The home sync's part of the contract: its status, runs, conflicts and versions, methods and events.
// Spread into `methods` and `EventPayloads` in contract/index.ts.
import { z } from 'zod';
import type { ErrorInfo } from '../errors';
import { method, noArgs } from './method';

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
  /** When a sync was refused for safety: what it would have deleted (the first 50 files)… */
  wouldDelete: string[];
  /** …and how many files in all. */
  wouldDeleteCount: number;
  excludes: string[];
  bandwidthLimitKBps: number;
}

/**
 * One run's end as `tabula sync` prints it, the same whether the run was made in its own process or by
 * the running agent on its behalf (`sync.run`): what went each way (the first names and the counts),
 * conflicts and what was skipped.
 */
export interface SyncRunSummary {
  dryRun: boolean;
  firstSync: boolean;
  pulled: string[];
  pushed: string[];
  deletedLocal: string[];
  deletedRemote: string[];
  counts: { pulled: number; pushed: number; deletedLocal: number; deletedRemote: number };
  conflicts: Omit<ConflictInfo, 'versions'>[];
  skipped: { path: string; why: string }[];
  bytesTransferred: number;
}

export interface SyncEventPayloads {
  /** Syncthing-style: entering a state always comes with its reason and how long the last one lasted. */
  'backup-state-changed': { from: BackupState; to: BackupState; reason: string; durationMs: number; status: BackupStatus };
  'backup-progress': BackupProgress;
  'backup-finished': BackupRun;
}

/** The home sync's part of the contract. */
export const syncMethods = {
  /** Queues a sync and starts it when the storage is reachable; `force` overrides the safety refusals. */
  'backup.start': method<{ queued: boolean; requestedAt: string }>()(z.object({ force: z.boolean().optional() }).strict()),
  /**
   * One run now, answered when it ends (`tabula sync` while the agent runs: the agent's change journal
   * and kept ssh connection serve it). `verify` lists the storage and the home in full, as a run by hand does.
   */
  'sync.run': method<SyncRunSummary>()(z.object({ force: z.boolean().optional(), verify: z.boolean().optional() }).strict()),
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

