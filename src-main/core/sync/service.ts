// The home sync as the agent runs it: requests go into a journal on disk (so "Back up now" while
// offline survives restarts and reboots), runs start by themselves when the storage is reachable again,
// on a schedule and after changes in the home; state, progress and results are published as events.
// The parts live next door: options.ts (what a run is given, shared with `tabula sync`), journal.ts,
// scheduling.ts (on the runtime Schedule), history.ts, conflict-resolution.ts, restore.ts, watch-home.ts and
// change-journal.ts (which folders of the home changed since the last run).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { HomeSafetyReport } from '../../common/contract/helpdesk';
import type { BackupProgress, BackupState, BackupStatus, RunOutcome } from '../../common/contract/sync';
import { TabulaError, toErrorInfo, type ErrorInfo } from '../../common/errors';
import type { EventLog } from '../../common/event-log';
import { readJsonDocument, writeFileAtomic } from '../atomic-file';
import { loadConfig, type TabulaConfig } from '../config';
import type { DesktopOpener } from '../desktop-open';
import { ensureRuntimeDir, type Paths } from '../paths';
import { realClock, type Clock } from '../runtime/clock';
import type { Probes } from '../runtime/probes';
import { createExclusive, createSchedule } from '../runtime/schedule';
import { transition } from '../runtime/state-machine';
import { parseStorageUrl } from '../storage-url';
import { createConflictResolution } from './conflict-resolution';
import { countLocalChanges as countChanges, runSync, type SyncSummary } from './engine';
import { createRunHistory, runRecord, stateAfter } from './history';
import { createSyncJournal, personAsked, runEnd } from './journal';
import { builtInStorage } from './excludes';
import { syncRunOptions } from './options';
import { createRestore } from './restore';
import { syncDeferral, syncPolicy } from './scheduling';
import { createChangeJournal, type ChangeJournal, type TakenChanges } from './change-journal';
import { ignoredFolders, watchHome } from './watch-home';

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

const pausedReason = 'Sync is paused. Changes wait until you resume.';

export function createSyncService({ paths, getConfig, events, now = () => new Date(), clock = realClock, reportProblem, autoStart = true, probes, opener }: SyncServiceDeps) {
  const history = createRunHistory(paths.stateDir, reportProblem);
  const conflicts = createConflictResolution({ home: paths.home, stateDir: paths.stateDir, thisHost: () => configuredOptions().options.host, opener, reportProblem });
  const journal = createSyncJournal(paths.stateDir, now, reportProblem);
  let current: { cancel: (() => void) | null; cancelled: boolean; done: Promise<unknown> } | null = null;
  // Runs and the dry runs that tell the reimage guard what is not on the storage share the state
  // folder's listings: one at a time (a dry run that started with a run deleted the run's listing).
  const spool = createExclusive();
  /** A finished run's result, published once the next run is armed (so the event says when). */
  let finishing: ((nextAt: number | null) => void) | null = null;
  let disposed = false;
  const stops: (() => void)[] = [];

  const config = () => getConfig();
  const displayOf = (url: string) => safe(() => parseStorageUrl(url).display, url);
  const storageDisplay = () => displayOf(config().storage.url);
  const isLocalOnly = (url: string) => safe(() => {
    const s = parseStorageUrl(url);
    return s.kind === 'local' && s.path === builtInStorage(paths);
  }, false);
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  // State, last success and queued count belong to the storage in use: a new storage.url starts over.
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

  function setState(to: BackupState, reason: string, patch: Partial<BackupStatus> = {}) {
    const t = transition(status, to, reason, now().getTime(), patch);
    status = t.status;
    events.publish('backup-state-changed', { ...t.change, status: { ...status, conflicts: conflicts.describe(status.conflicts) } });
  }

  const schedule = createSchedule({
    clock,
    policy: () => syncPolicy(config().backup),
    // "Back up now" during a run is not answered by that run: it runs once more afterwards.
    whileRunning: 'queue',
    async deferral(trigger) {
      if (trigger === 'timer' && journal.pending() === 0) journal.add('schedule', { persist: false });
      if (!probes || journal.paused() || journal.pending() === 0 || personAsked(journal)) return null;
      const why = await syncDeferral(probes, config().backup);
      if (why && !disposed) setState('deferred', why, { nextAttemptAt: null });
      return why;
    },
    run: () => spool.run(() => runQueued()),
    onChange: ({ nextAt }) => {
      status = { ...status, nextAttemptAt: journal.paused() ? null : iso(nextAt) };
    },
    afterRun: (_ok, nextAt) => {
      const publish = finishing;
      finishing = null;
      publish?.(nextAt);
    },
  });

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

  /**
   * Changes in the home the storage does not have yet, against the archive; null when that cannot be
   * told. Only the folders the change journal marked are listed (the whole home when it cannot vouch).
   */
  async function countLocalChanges(): Promise<number | null> {
    try {
      const { home, storage, excludes } = runOptions();
      const changes = changeJournal ? await changeJournal.peek() : null;
      return await countChanges(home, excludes, paths.stateDir, storage.display, changes);
    } catch {
      return null;
    }
  }

  /** Runs what the journal holds, if anything; resolves false on a failure worth retrying (the schedule backs off). */
  async function runQueued(): Promise<boolean> {
    if (current || journal.paused() || disposed || journal.pending() === 0) return true;
    const force = journal.requests().some((r) => r.force);
    const manual = journal.requests().some((r) => r.reason === 'manual');
    const id = crypto.randomUUID();
    const startedAt = now();
    current = { cancel: null, cancelled: false, done: Promise.resolve() };
    setState('running', `Syncing with ${storageDisplay()}…`, { progress: null, nextAttemptAt: null });
    const run = execute(id, startedAt, force, manual);
    current.done = run.catch(() => undefined);
    try {
      return await run;
    } finally {
      current = null;
    }
  }

  let changeJournal: ChangeJournal | null = null;

  /** When the last run ended, by the wall clock and by the monotonic one (which stops while the laptop sleeps). */
  let lastRunEnd: { wall: number; mono: number } | null = null;

  async function execute(id: string, startedAt: Date, force: boolean, manual: boolean): Promise<boolean> {
    let outcome: RunOutcome = 'failed';
    let error: ErrorInfo | null = null;
    let summary: SyncSummary | null = null;
    let storageName = storageDisplay();
    let taken: TakenChanges | null = null;
    try {
      const options = runOptions();
      storageName = options.storage.display;
      // What changed in the home since the last run. "Back up now" lists it all (verify) all the same.
      taken = changeJournal ? await changeJournal.take() : null;
      // The laptop slept since the last run: the shared ssh connection most likely died with the
      // network, and ssh would notice only after its keep-alives went unanswered (45 s). Start anew.
      if (lastRunEnd && Date.now() - lastRunEnd.wall - (performance.now() - lastRunEnd.mono) > 30_000) await options.storage.close();
      let lastSent = 0;
      summary = await runSync({
        ...options,
        force,
        // "Back up now" is a person asking: the storage is listed in full, as `tabula sync` by hand does,
        // so that a change made on it directly is seen now rather than at the daily check.
        verify: manual,
        localChanges: taken?.changes ?? null,
        onWaiting: (reason) => setState('running', reason, {}),
        now,
        onCancelable: (cancel) => {
          current!.cancel = cancel;
          if (current!.cancelled) cancel();
        },
        onProgress(p) {
          const t = Date.now();
          if (t - lastSent < 200 && p.percent !== 100) return;
          lastSent = t;
          const progress: BackupProgress = { ...p, bytesTotal: p.percent >= 1 ? Math.round((p.bytesDone * 100) / p.percent) : null };
          status = { ...status, progress };
          events.publish('backup-progress', progress);
        },
      });
      outcome = 'success';
    } catch (err) {
      taken?.failed(); // the next run lists the whole home
      error = toErrorInfo(err);
      outcome = error.code === 'cancelled' ? 'cancelled' : 'failed';
    }
    lastRunEnd = { wall: Date.now(), mono: performance.now() };
    const run = runRecord({ id, startedAt, finishedAt: now(), outcome, summary, storage: storageName, error });
    history.add(run);
    journal.finished(startedAt, runEnd(outcome, error));
    const open = conflicts.open();
    // Paused during the run: the run's result is kept (last run, last success), the state stays paused.
    const next = journal.paused() && run.outcome !== 'failed' && !open.length ? { state: 'paused' as const, reason: pausedReason } : stateAfter(run, open.length);
    const queuedChanges = outcome === 'success' ? 0 : await countLocalChanges();
    let reason = next.reason;
    // The next try is its own field (nextAttemptAt): the window and CLI show it once, not in the reason.
    if (next.state === 'offline') {
      const queued = queuedChanges === null ? 'changes queued (how many cannot be told now)' : `${queuedChanges} ${queuedChanges === 1 ? 'change' : 'changes'} queued`;
      reason = `Waiting for storage — ${queued}. ${error!.message}`;
    }
    finishing = (nextAt) => {
      setState(next.state, reason, {
        lastRun: run,
        lastSuccessAt: outcome === 'success' ? run.finishedAt : status.lastSuccessAt,
        progress: null,
        storage: storageName,
        queuedChanges,
        conflicts: open,
        wouldDelete: error?.code === 'sync-refused' ? (error.details ?? []) : [],
        wouldDeleteCount: error?.code === 'sync-refused' ? (error.detailsTotal ?? error.details?.length ?? 0) : 0,
        nextAttemptAt: journal.paused() ? null : iso(nextAt),
      });
      events.publish('backup-finished', run);
    };
    return !(error?.retryable && error.code !== 'cancelled');
  }

  /** After a change in the home: how many changes are only on this laptop now (the safety line says so). */
  let counting: unknown = null;
  function recount() {
    if (counting !== null) clock.clearTimeout(counting);
    counting = clock.setTimeout(() => {
      counting = null;
      if (current || disposed) return;
      void countLocalChanges().then((n) => {
        if (current || disposed || n === status.queuedChanges) return;
        setState(status.state, status.reason, { queuedChanges: n });
      });
    }, 2000);
  }

  function request(reason: string, force = false) {
    journal.add(reason, { force });
    void schedule.trigger('request');
  }

  function updateUserConfig(patch: (c: Record<string, unknown>) => void) {
    const file = paths.userConfigFile;
    const read = readJsonDocument(file, z.record(z.string(), z.unknown()));
    if (read.status === 'invalid') throw new TabulaError('invalid-argument', `${file} ${read.problem}; fix it before changing settings here.`);
    const value = read.status === 'ok' ? read.value : {};
    patch(value);
    writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
  }

  // storage.url may change in a config file at any time (the user, the fleet): look every few
  // seconds, so the window and tray stop describing the old storage without waiting for a client.
  function watchConfig() {
    let t: unknown = null;
    const look = () => {
      t = clock.setTimeout(() => {
        void api.status();
        look();
      }, 5000);
    };
    look();
    return () => clock.clearTimeout(t);
  }

  const api = {
    /** Watches the home and the config, arms the schedule, and runs what is queued from before a restart or reboot. */
    startAutomatic() {
      if (!autoStart || disposed) return;
      stops.push(watchConfig());
      if (config().backup.watchHome) {
        // The change journal both starts a run after changes and tells each run which folders changed.
        ensureRuntimeDir(paths); // its marker file lives there
        const cj = createChangeJournal({ home: paths.home, ignore: ignoredFolders(paths, config().storage.url).map((i) => path.join(paths.home, i)), workDir: paths.runtimeDir, reportProblem });
        changeJournal = cj;
        stops.push(() => {
          changeJournal = null;
          cj.close();
        });
        stops.push(
          watchHome({
            paths,
            clock,
            storageUrl: () => config().storage.url,
            debounceMs: () => config().backup.debounceSeconds * 1000,
            subscribe: (listener) => cj.onChanged(listener),
            changed: recount,
            settled: () => request('change'),
          }),
        );
      }
      // A home never synced with the storage the image names (a new laptop, a first login) is
      // restored at once, not after the first interval: the person's files should be there when
      // they sit down. A storage the person chose themselves waits for them ("Back up now" in the
      // window they are looking at) or for the interval.
      const cfg = config();
      const restoreNow = !status.lastSuccessAt && !isLocalOnly(cfg.storage.url) && safe(() => loadConfig(paths, { systemOnly: true }).config.storage.url === cfg.storage.url, false);
      schedule.start(journal.pending() || restoreNow ? 0 : cfg.backup.intervalMinutes * 60_000);
    },
    status(): BackupStatus {
      if (current) return status;
      // One read of the layered config per call: status is asked on every refresh of the window and tray.
      const cfg = config();
      const storage = displayOf(cfg.storage.url);
      if (storage !== statusFor) {
        // Another storage: what was true of the old one (backed up, queued, last success) is not of this one.
        statusFor = storage;
        const fresh = initialStatus();
        setState(fresh.state, fresh.reason, { ...fresh, since: now().toISOString() });
        if (!fresh.lastRun) void countLocalChanges().then((n) => statusFor === storage && !current && setState(status.state, status.reason, { queuedChanges: n }));
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
    history: (limit = 50) => history.recent(limit),
    start(force = false): { queued: boolean; requestedAt: string } {
      if (journal.paused()) throw new TabulaError('not-running', 'Sync is paused. Resume it first.', { retryable: false });
      const requestedAt = now().toISOString();
      request('manual', force);
      return { queued: true, requestedAt };
    },
    cancel(): { cancelled: boolean } {
      if (!current) return { cancelled: false };
      current.cancelled = true;
      current.cancel?.();
      return { cancelled: true };
    },
    pause(): BackupStatus {
      journal.setPaused(true);
      if (!current) setState('paused', pausedReason, { paused: true, nextAttemptAt: null });
      else status = { ...status, paused: true };
      return status;
    },
    resume(): BackupStatus {
      journal.setPaused(false);
      status = { ...status, paused: false };
      request('resume');
      return status;
    },
    settings(s: { excludes?: string[]; bandwidthLimitKBps?: number }): BackupStatus {
      updateUserConfig((c) => {
        const backup = (c.backup ?? {}) as Record<string, unknown>;
        if (s.excludes) backup.excludes = s.excludes;
        if (s.bandwidthLimitKBps !== undefined) backup.bandwidthLimitKBps = s.bandwidthLimitKBps;
        c.backup = backup;
      });
      const { backup } = config();
      status = { ...status, excludes: backup.excludes, bandwidthLimitKBps: backup.bandwidthLimitKBps };
      return status;
    },
    async resolveConflict(p: string, keep: 'mine' | 'theirs' | 'both'): Promise<{ resolved: string }> {
      // Never under a running sync's feet: it may be moving these very files.
      await current?.done;
      const r = conflicts.resolve(p, keep);
      status = { ...status, conflicts: conflicts.open() };
      if (!journal.paused()) request('conflict-resolved');
      return r;
    },
    openConflict: (p: string, side: 'this-laptop' | 'storage', reveal: boolean) => conflicts.openVersion(p, side, reveal),
    ...createRestore({ home: paths.home, stateDir: paths.stateDir, storage: () => runOptions().storage }),
    /** For the reimage guard: what in the home is not on the storage yet (a dry run of the sync). */
    async unsyncedChanges(): Promise<HomeSafetyReport> {
      const queued = journal.pending();
      if (current) return { count: 0, paths: [], queued: Math.max(queued, 1), unknownReason: 'A sync is running right now; wait for it to finish.' };
      try {
        const s = await spool.run(() => runSync({ ...runOptions(), dryRun: true, force: true }));
        // The summary names the first of them; the count is of all.
        const unsynced = [...s.conflicts.map((c) => c.path), ...s.pushed];
        return { count: s.counts.pushed + s.conflicts.length, paths: unsynced.slice(0, 200).map((p) => `~/${p}`), queued, unknownReason: null };
      } catch (err) {
        return { count: 0, paths: [], queued, unknownReason: `${toErrorInfo(err).message} Tabula cannot tell whether your files are safe.` };
      }
    },
    whenIdle: () => schedule.whenIdle(),
    /** Ends the ssh connection kept between runs (when the agent stops). */
    async closeConnection(): Promise<void> {
      await safe(() => configuredOptions().options.storage.close(), Promise.resolve());
    },
    dispose() {
      disposed = true;
      schedule.stop();
      if (counting !== null) clock.clearTimeout(counting);
      counting = null;
      for (const stop of stops.splice(0)) stop();
    },
  };
  return api;
}

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}
