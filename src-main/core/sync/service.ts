// The home sync as the agent runs it: requests go into a journal on disk (so "Back up now" while
// offline survives restarts and reboots), runs start by themselves when the storage is reachable again,
// on a schedule and after changes in the home; state, progress and results are published as events.
// This file only puts the parts together: sync-status.ts (the status and its events), journal.ts,
// runner.ts (one run), scheduling.ts (when runs come, on the runtime Schedule), change-count.ts
// (changes only on this laptop), automatic.ts (watching the home and the config), conflict-resolution.ts,
// restore.ts, settings.ts, unsynced.ts (for the reimage guard), history.ts and options.ts (what a run
// is given, shared with `tabula sync`).
import fs from 'node:fs';
import type { BackupStatus } from '../../common/contract/sync';
import { TabulaError } from '../../common/errors';
import type { EventLog } from '../../common/event-log';
import type { TabulaConfig } from '../config';
import type { DesktopOpener } from '../desktop-open';
import { ensureRuntimeDir, type Paths } from '../paths';
import { realClock, type Clock } from '../runtime/clock';
import type { Probes } from '../runtime/probes';
import { createExclusive } from '../runtime/schedule';
import { firstRunDelay, watchConfig, watchHomeChanges } from './automatic';
import type { ChangeJournal } from './change-journal';
import type { SyncSummary } from './engine';
import { createChangeCount } from './change-count';
import { createConflictResolution } from './conflict-resolution';
import { builtInStorage } from './excludes';
import { createRunHistory } from './history';
import { createSyncJournal } from './journal';
import { syncRunOptions } from './options';
import { acquireLock } from './local-lock';
import { createRestore } from './restore';
import { createSyncRunner } from './runner';
import { createSyncSchedule } from './scheduling';
import { saveBackupSettings, type BackupSettings } from './settings';
import { createSyncStatus, pausedReason, safe } from './sync-status';
import { unsyncedChanges } from './unsynced';

// Beside the matcher (excludes.ts), so that `tabula sync` loads without the service.
export { builtInStorage, defaultExcludes } from './excludes';

export interface SyncServiceDeps {
  paths: Paths;
  getConfig: () => TabulaConfig;
  events: EventLog;
  now?: () => Date;
  /** The schedule's timers (retries, interval, deferral, debounce); tests pass the FAKE clock. */
  clock?: Clock;
  reportProblem?: (message: string) => void;
  /** Off in tests that drive runs by hand. */
  autoStart?: boolean;
  /** Battery and metered network; tests pass a fake. */
  probes?: Probes;
  /** Opens a conflict's version for the window (xdg-open). */
  opener?: DesktopOpener;
}

export type SyncService = ReturnType<typeof createSyncService>;

export function createSyncService({ paths, getConfig: config, events, now = () => new Date(), clock = realClock, reportProblem, autoStart = true, probes, opener }: SyncServiceDeps) {
  let disposed = false;
  let changeJournal: ChangeJournal | null = null;
  const stops: (() => void)[] = [];

  /** The run's options from the config as it is now (nothing is made on disk). */
  function configuredOptions() {
    const cfg = config();
    // The agent keeps its ssh connection from one run to the next (a new one costs 0.3 s and a key
    // exchange on the storage) and closes it when it stops; past the interval it closes by itself.
    return syncRunOptions(paths, cfg, { keepConnectionSeconds: cfg.backup.intervalMinutes * 60 + 300 });
  }
  /** The run's endpoints and options, with the folders a run needs. */
  function runOptions() {
    const { storage, options } = configuredOptions();
    ensureRuntimeDir(paths); // ssh's connection sockets live there
    if (storage.kind === 'local' && storage.path === builtInStorage(paths)) fs.mkdirSync(storage.path, { recursive: true });
    return options;
  }

  const history = createRunHistory(paths.stateDir, reportProblem);
  const conflicts = createConflictResolution({ home: paths.home, stateDir: paths.stateDir, thisHost: () => configuredOptions().options.host, opener, reportProblem });
  const journal = createSyncJournal(paths.stateDir, now, reportProblem);
  const status = createSyncStatus({ paths, config, history, conflicts, journal, events, now });
  const changes = createChangeCount({ clock, stateDir: paths.stateDir, runOptions, changeJournal: () => changeJournal, status, busy: () => runner.running() || disposed });
  const runner = createSyncRunner({ journal, history, conflicts, status, events, now, runOptions, changeJournal: () => changeJournal, countLocalChanges: changes.count, disposed: () => disposed });
  // Runs and the dry runs that tell the reimage guard what is not on the storage share the state
  // folder's listings: one at a time (a dry run that started with a run deleted the run's listing).
  const spool = createExclusive();
  const schedule = createSyncSchedule({
    clock,
    backup: () => config().backup,
    journal,
    probes,
    run: () => spool.run(() => runner.runQueued()),
    deferred: (why) => !disposed && status.set('deferred', why, { nextAttemptAt: null }),
    nextChanged: (nextAt) => status.patch({ nextAttemptAt: journal.paused() || nextAt === null ? null : new Date(nextAt).toISOString() }),
    afterRun: (nextAt) => runner.finished(nextAt),
  });

  function request(reason: string, force = false) {
    journal.add(reason, { force });
    void schedule.trigger('request');
  }

  const restore = createRestore({
    home: paths.home,
    stateDir: paths.stateDir,
    storage: () => runOptions().storage,
    // Like a conflict's choice, never under a running sync's feet; and since a restore takes a while
    // (a copy from the storage), it holds the queue until done. The restored copy goes up next.
    async inTurn(shown, fn) {
      if (runner.running()) status.set('running', `${status.get().reason} ${shown} is restored once this sync has finished.`);
      // The local lock as well: a `tabula sync` run by hand is refused meanwhile, as during a sync.
      const r = await spool.run(async () => {
        const release = acquireLock(paths.stateDir, 'restore');
        try {
          return await fn();
        } finally {
          release();
        }
      });
      if (!journal.paused()) request('restored');
      return r;
    },
  });

  const api = {
    /** Watches the home and the config, arms the schedule, and runs what is queued from before a restart or reboot. */
    startAutomatic() {
      if (!autoStart || disposed) return;
      stops.push(watchConfig(clock, () => void api.status()));
      if (config().backup.watchHome) {
        const watch = watchHomeChanges({ paths, clock, config, reportProblem, changed: changes.recount, settled: () => request('change') });
        changeJournal = watch.journal;
        stops.push(() => {
          changeJournal = null;
          watch.stop();
        });
      }
      const cfg = config();
      schedule.start(firstRunDelay({ paths, cfg, pending: journal.pending(), lastSuccessAt: status.get().lastSuccessAt, localOnly: status.isLocalOnly(cfg.storage.url) }));
    },
    status: (): BackupStatus => (runner.running() ? status.get() : status.read(changes.count, runner.running)),
    history: (limit = 50) => history.recent(limit),
    start(force = false): { queued: boolean; requestedAt: string } {
      if (journal.paused()) throw new TabulaError('not-running', 'Sync is paused. Resume it first.', { retryable: false });
      const requestedAt = now().toISOString();
      request('manual', force);
      return { queued: true, requestedAt };
    },
    /** `tabula sync` through the agent: one run now, with the agent's change journal and kept connection. */
    run(force = false, verify = false): Promise<SyncSummary> {
      if (journal.paused()) throw new TabulaError('not-running', 'Sync is paused. Resume it first.', { retryable: false });
      const result = runner.nextRun({ force, verify });
      void schedule.trigger('request', true); // a person asked: no waiting for a better network or more battery
      return result;
    },
    cancel: () => runner.cancel(),
    pause(): BackupStatus {
      journal.setPaused(true);
      if (!runner.running()) status.set('paused', pausedReason, { paused: true, nextAttemptAt: null });
      else status.patch({ paused: true });
      return status.get();
    },
    resume(): BackupStatus {
      journal.setPaused(false);
      status.patch({ paused: false });
      request('resume');
      return status.get();
    },
    settings(s: BackupSettings): BackupStatus {
      saveBackupSettings(paths.userConfigFile, s);
      const { backup } = config();
      return status.patch({ excludes: backup.excludes, bandwidthLimitKBps: backup.bandwidthLimitKBps });
    },
    async resolveConflict(p: string, keep: 'mine' | 'theirs' | 'both'): Promise<{ resolved: string }> {
      // Never under a running sync's feet: it may be moving these very files.
      await runner.idle();
      const r = conflicts.resolve(p, keep);
      status.patch({ conflicts: conflicts.open() });
      if (!journal.paused()) request('conflict-resolved');
      return r;
    },
    openConflict: (p: string, side: 'this-laptop' | 'storage', reveal: boolean) => conflicts.openVersion(p, side, reveal),
    ...restore,
    /** For the reimage guard: what in the home is not on the storage yet (a dry run of the sync). */
    unsyncedChanges: () => unsyncedChanges({ journal, running: runner.running(), spool, runOptions }),
    whenIdle: () => schedule.whenIdle(),
    /** Ends the ssh connection kept between runs (when the agent stops). */
    async closeConnection(): Promise<void> {
      await safe(() => configuredOptions().options.storage.close(), Promise.resolve());
    },
    dispose() {
      disposed = true;
      schedule.stop();
      changes.dispose();
      for (const stop of stops.splice(0)) stop();
    },
  };
  return api;
}
