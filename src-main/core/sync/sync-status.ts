// The sync's status as the window, the tray and `tabula backup status` read it: one value, changed
// only through set() (which publishes the change as a numbered event, from → to with a reason) or,
// for what is not a change of state (progress, the next try), through patch(). It belongs to the
// storage in use: a new storage.url starts it over from that storage's history.
import type { BackupState, BackupStatus } from '../../common/contract/sync';
import type { EventLog } from '../../common/event-log';
import type { TabulaConfig } from '../config';
import type { Paths } from '../paths';
import type { Journal } from '../runtime/journal';
import { transition } from '../runtime/state-machine';
import { parseStorageUrl } from '../storage-url';
import type { ConflictResolution } from './conflict-resolution';
import { builtInStorage } from './excludes';
import { stateAfter, type RunHistory } from './history';

export const pausedReason = 'Sync is paused. Changes wait until you resume.';

export interface SyncStatusDeps {
  paths: Paths;
  config: () => TabulaConfig;
  history: RunHistory;
  conflicts: ConflictResolution;
  journal: Journal;
  events: EventLog;
  now: () => Date;
}

export function createSyncStatus({ paths, config, history, conflicts, journal, events, now }: SyncStatusDeps) {
  const displayOf = (url: string) => safe(() => parseStorageUrl(url).display, url);
  const storageDisplay = () => displayOf(config().storage.url);
  const isLocalOnly = (url: string) =>
    safe(() => {
      const s = parseStorageUrl(url);
      return s.kind === 'local' && s.path === builtInStorage(paths);
    }, false);
  let statusFor = storageDisplay();
  let status: BackupStatus = initialStatus();

  function initialStatus(): BackupStatus {
    const mine = history.all().filter((r) => r.storage === statusFor);
    const lastRun = mine.at(-1) ?? null;
    const lastSuccessAt = mine.findLast((r) => r.outcome === 'success')?.finishedAt ?? null;
    const base: BackupStatus = {
      state: 'never',
      reason: `Not synced yet. “Back up now” brings your home and ${storageDisplay()} together.`,
      since: now().toISOString(),
      lastSuccessAt,
      lastRun,
      progress: null,
      storage: statusFor,
      localOnly: isLocalOnly(config().storage.url),
      paused: journal.paused(),
      queuedChanges: 0,
      nextAttemptAt: null,
      conflicts: conflicts.open(),
      wouldDelete: [],
      wouldDeleteCount: 0,
      excludes: config().backup.excludes,
      bandwidthLimitKBps: config().backup.bandwidthLimitKBps,
    };
    if (journal.paused()) return { ...base, state: 'paused', reason: pausedReason };
    if (!lastRun) return base;
    return { ...base, ...stateAfter(lastRun, base.conflicts.length) };
  }

  function set(to: BackupState, reason: string, patch: Partial<BackupStatus> = {}) {
    const t = transition(status, to, reason, now().getTime(), patch);
    status = t.status;
    events.publish('backup-state-changed', { ...t.change, status: { ...status, conflicts: conflicts.describe(status.conflicts) } });
  }

  return {
    /** The status as it stands (during a run: as the run left it). */
    get: () => status,
    set,
    /** What changes no state and is not published as a change (progress, the next try, settings). */
    patch(p: Partial<BackupStatus>) {
      status = { ...status, ...p };
      return status;
    },
    storageDisplay,
    isLocalOnly,
    /**
     * The status for a client, with the storage, excludes and limit as the config says now. A storage
     * other than the one the status was about starts it over; `count` then tells its queued changes.
     */
    read(count: () => Promise<number | null>, running: () => boolean): BackupStatus {
      // One read of the layered config per call: status is asked on every refresh of the window and tray.
      const cfg = config();
      const storage = displayOf(cfg.storage.url);
      if (storage !== statusFor) {
        // Another storage: what was true of the old one (backed up, queued, last success) is not of this one.
        statusFor = storage;
        const fresh = initialStatus();
        set(fresh.state, fresh.reason, { ...fresh, since: now().toISOString() });
        if (!fresh.lastRun) void count().then((n) => statusFor === storage && !running() && set(status.state, status.reason, { queuedChanges: n }));
      }
      return {
        ...status,
        storage,
        localOnly: isLocalOnly(cfg.storage.url),
        conflicts: conflicts.describe(status.conflicts),
        excludes: cfg.backup.excludes,
        bandwidthLimitKBps: cfg.backup.bandwidthLimitKBps,
      };
    },
  };
}
export type SyncStatus = ReturnType<typeof createSyncStatus>;

export function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}
