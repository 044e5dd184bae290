// The home sync as the agent runs it: requests go into a journal on disk (so "Back up now" while
// offline survives restarts and reboots), runs start by themselves when the storage is reachable again,
// on a schedule and after changes in the home; state, progress and results are published as events.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { BackupProgress, BackupRun, BackupState, BackupStatus, ConflictInfo, ConflictVersion, RunOutcome } from '../../common/contract';
import type { HomeSafetyReport } from '../../common/contract/image';
import { errorCodes, TabulaError, toErrorInfo, type ErrorInfo } from '../../common/errors';
import type { EventLog } from '../../common/event-log';
import { createJsonStore, readJsonFile, writeFileAtomic } from '../atomic-file';
import { loadConfig, type TabulaConfig } from '../config';
import { displayPath, ensureRuntimeDir, type Paths } from '../paths';
import { parseStorageUrl } from '../storage-url';
import { localEndpoint, storageEndpoint } from './endpoint';
import { moveNoClobber } from './conflicts';
import { conflictStore, listEndpoint, loadArchive, runSync, type SyncSummary } from './engine';
import { builtInStorage, defaultExcludes } from './excludes';
import { sameEntry } from './plan';
import { createJournal, type RunEnd } from '../runtime/journal';
import { transition } from '../runtime/state-machine';
import type { Probes } from '../runtime/probes';
import { homeRelative, listVersions, pickVersion, restoreVersion } from './versions';
import type { DesktopOpener } from '../desktop-open';

const runSchema: z.ZodType<BackupRun> = z.object({
  id: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  outcome: z.enum(['success', 'failed', 'cancelled']),
  filesTransferred: z.number(),
  bytesTransferred: z.number(),
  pulled: z.number().default(0),
  pushed: z.number().default(0),
  deleted: z.number().default(0),
  conflicts: z.number().default(0),
  storage: z.string(),
  error: z.object({ code: z.enum(errorCodes), message: z.string(), retryable: z.boolean(), details: z.array(z.string()).optional() }).nullable(),
}) as z.ZodType<BackupRun>;
const HISTORY_LIMIT = 500;


// Beside the matcher, so that `tabula sync` loads without the service.
export { builtInStorage, defaultExcludes } from './excludes';

export interface SyncServiceDeps {
  paths: Paths;
  getConfig: () => TabulaConfig;
  events: EventLog;
  now?: () => Date;
  reportProblem?: (message: string) => void;
  /** Off in tests that drive runs by hand. */
  autoStart?: boolean;
  /** Battery and metered network (the image scheduler's probes); tests pass a fake. */
  probes?: Probes;
  /** Opens a conflict's version for the window (xdg-open). */
  opener?: DesktopOpener;
}

export type SyncService = ReturnType<typeof createSyncService>;

export function createSyncService({ paths, getConfig, events, now = () => new Date(), reportProblem, autoStart = true, probes, opener }: SyncServiceDeps) {
  const history = createJsonStore(path.join(paths.stateDir, 'history.json'), z.array(runSchema), () => []);
  const conflicts = conflictStore(paths.stateDir);
  const loadedHistory = history.load();
  if (loadedHistory.problem) reportProblem?.(loadedHistory.problem);
  const journal = createJournal({ file: path.join(paths.stateDir, 'queue.json'), now, reportProblem });
  let runs = loadedHistory.value;
  let current: { cancel: (() => void) | null; cancelled: boolean; done: Promise<void> } | null = null;
  let timer: NodeJS.Timeout | null = null;
  let failures = 0;
  let watcher: fs.FSWatcher | null = null;
  let debounce: NodeJS.Timeout | null = null;
  let disposed = false;

  const config = () => getConfig();
  const displayOf = (url: string) => safe(() => parseStorageUrl(url).display, url);
  const storageDisplay = () => displayOf(config().storage.url);
  const isLocalOnly = (url: string) => safe(() => {
    const s = parseStorageUrl(url);
    return s.kind === 'local' && s.path === builtInStorage(paths);
  }, false);
  // State, last success and queued count belong to the storage in use: a new storage.url starts over.
  let statusFor = storageDisplay();
  let status: BackupStatus = initialStatus();

  function initialStatus(): BackupStatus {
    const mine = runs.filter((r) => r.storage === statusFor);
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
      conflicts: conflicts.load().value,
      wouldDelete: [],
      excludes: config().backup.excludes,
      bandwidthLimitKBps: config().backup.bandwidthLimitKBps,
    };
    if (journal.paused()) return { ...base, state: 'paused', reason: 'Sync is paused. Changes wait until you resume.' };
    if (!lastRun) return base;
    return { ...base, ...stateAfter(lastRun, base.conflicts.length) };
  }

  /**
   * The conflict a path names: its copy's name always names one; the file's own name only while one
   * conflict is open on it (a second conflict on the same file is told apart by its copy).
   */
  function findConflict(list: ConflictInfo[], rel: string): ConflictInfo {
    const byCopy = list.find((x) => x.conflictPath === rel);
    if (byCopy) return byCopy;
    const byName = list.filter((x) => x.path === rel);
    const shown = (r: string) => displayPath(path.join(paths.home, r), paths.home);
    if (!byName.length) throw new TabulaError('invalid-argument', `There is no conflict for ${shown(rel)}.`);
    if (byName.length > 1) throw new TabulaError('invalid-argument', `${shown(rel)} has ${byName.length} conflicts: name the conflict copy (${byName.map((x) => shown(x.conflictPath)).join(', ')}).`);
    return byName[0]!;
  }

  /** Which file is whose: ours sits under the name when we kept it, else under the conflict name. */
  const sides = (c: ConflictInfo) => (c.kept === 'local' ? { mine: c.path, theirs: c.conflictPath } : { mine: c.conflictPath, theirs: c.path });

  /** Each conflict with both versions as they are now: size, time, and where each came from. */
  function describeConflicts(list: ConflictInfo[]): ConflictInfo[] {
    const version = (rel: string, host: string | null): ConflictVersion | null => {
      const st = fs.lstatSync(path.join(paths.home, rel), { throwIfNoEntry: false });
      return st ? { path: rel, size: st.size, modifiedAt: st.mtime.toISOString(), host } : null;
    };
    return list.map((c) => {
      const { mine, theirs } = sides(c);
      return { ...c, versions: { thisLaptop: version(mine, os.hostname()), storage: version(theirs, c.from ?? null) } };
    });
  }

  function setState(to: BackupState, reason: string, patch: Partial<BackupStatus> = {}) {
    const t = transition(status, to, reason, now().getTime(), patch);
    status = t.status;
    events.publish('backup-state-changed', { ...t.change, status: { ...status, conflicts: describeConflicts(status.conflicts) } });
  }

  function schedule(delayMs: number) {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!autoStart || disposed) return;
    status = { ...status, nextAttemptAt: new Date(now().getTime() + delayMs).toISOString() };
    timer = setTimeout(() => {
      timer = null;
      if (journal.pending() === 0) journal.add('schedule', { persist: false });
      kick();
    }, delayMs);
    timer.unref?.();
  }

  function endpoints() {
    const cfg = config();
    const storage = parseStorageUrl(cfg.storage.url);
    ensureRuntimeDir(paths); // ssh's connection sockets live there
    const embeddedDefault = storage.kind === 'local' && storage.path === path.join(paths.dataDir, 'storage');
    if (embeddedDefault) fs.mkdirSync(storage.path, { recursive: true });
    return {
      cfg,
      storage,
      home: localEndpoint(paths.home),
      // The agent keeps its ssh connection from one run to the next (a new one costs 0.3 s and a key
      // exchange on the storage) and closes it when it stops; past the interval it closes by itself.
      remote: storageEndpoint(storage, cfg.storage.sshOptions, cfg.storage.connectTimeoutSeconds, paths.runtimeDir, cfg.backup.intervalMinutes * 60 + 300),
      excludes: [...defaultExcludes(paths, storage), ...cfg.backup.excludes],
    };
  }

  /** Changes in the home the storage does not have yet, from a local listing against the archive; null when that cannot be told. */
  async function countLocalChanges(): Promise<number | null> {
    try {
      const { home, remote, excludes } = endpoints();
      const [listing, archive] = [await listEndpoint(home, excludes), loadArchive(paths.stateDir, remote.display)];
      let n = 0;
      for (const [p, e] of listing.tree) if (e.type !== 'd' && !sameEntry(e, archive.tree.get(p), 'exact')) n++;
      for (const [p, e] of archive.tree) if (e.type !== 'd' && !listing.tree.has(p)) n++;
      return n;
    } catch {
      return null;
    }
  }

  /** When the last run ended, by the wall clock and by the monotonic one (which stops while the laptop sleeps). */
  let lastRunEnd: { wall: number; mono: number } | null = null;

  async function execute(id: string, startedAt: Date, force: boolean, manual: boolean) {
    let outcome: RunOutcome = 'failed';
    let error: ErrorInfo | null = null;
    let summary: SyncSummary | null = null;
    let storageName = storageDisplay();
    try {
      const { cfg, home, remote, excludes } = endpoints();
      storageName = remote.display;
      // The laptop slept since the last run: the shared ssh connection most likely died with the
      // network, and ssh would notice only after its keep-alives went unanswered (45 s). Start anew.
      if (lastRunEnd && Date.now() - lastRunEnd.wall - (performance.now() - lastRunEnd.mono) > 30_000) await remote.close();
      let lastSent = 0;
      summary = await runSync({
        home,
        storage: remote,
        excludes,
        stateDir: paths.stateDir,
        host: os.hostname(),
        force,
        maxDeleteShare: cfg.backup.maxDeletePercent / 100,
        bandwidthLimitKBps: cfg.backup.bandwidthLimitKBps || undefined,
        versionsRetentionDays: cfg.backup.versionsRetentionDays,
        verifyIntervalHours: cfg.backup.verifyHours,
        // "Back up now" is a person asking: the storage is listed in full, as `tabula sync` by hand does,
        // so that a change made on it directly is seen now rather than at the daily check.
        verify: manual,
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
      error = toErrorInfo(err);
      outcome = error.code === 'cancelled' ? 'cancelled' : 'failed';
    }
    lastRunEnd = { wall: Date.now(), mono: performance.now() };
    const s = summary;
    const run: BackupRun = {
      id,
      startedAt: startedAt.toISOString(),
      finishedAt: now().toISOString(),
      outcome,
      filesTransferred: s ? s.pulled.length + s.pushed.length : 0,
      bytesTransferred: s?.bytesTransferred ?? 0,
      pulled: s?.pulled.length ?? 0,
      pushed: s?.pushed.length ?? 0,
      deleted: s ? s.deletedLocal.length + s.deletedRemote.length : 0,
      conflicts: s?.conflicts.length ?? 0,
      storage: storageName,
      error,
    };
    runs = [...runs, run].slice(-HISTORY_LIMIT);
    try {
      history.save(runs);
    } catch (err) {
      reportProblem?.(`Could not save the sync history: ${(err as Error).message}`);
    }
    // Requests made before this run started are answered by it when it completed (or was refused,
    // or cannot succeed by retrying); a cancelled or interrupted run leaves them for the next one.
    const end: RunEnd = outcome === 'cancelled' ? 'cancelled' : outcome === 'success' || error?.code === 'sync-refused' || !error?.retryable ? 'completed' : 'failed-will-retry';
    journal.finished(startedAt, end);
    const open = conflicts.load().value;
    // Paused during the run: the run's result is kept (last run, last success), the state stays paused.
    const next = journal.paused() && run.outcome !== 'failed' && !open.length ? { state: 'paused' as const, reason: 'Sync is paused. Changes wait until you resume.' } : stateAfter(run, open.length);
    const queuedChanges = outcome === 'success' ? 0 : await countLocalChanges();
    failures = error?.retryable && error.code !== 'cancelled' ? failures + 1 : 0;
    const cfg = config();
    const delay = failures ? Math.min(cfg.backup.retryMinSeconds * 2 ** (failures - 1), cfg.backup.retryMaxSeconds) * 1000 : cfg.backup.intervalMinutes * 60_000;
    schedule(delay);
    let reason = next.reason;
    // The next try is its own field (nextAttemptAt): the window and CLI show it once, not in the reason.
    if (next.state === 'offline') {
      const queued = queuedChanges === null ? 'changes queued (how many cannot be told now)' : `${queuedChanges} ${queuedChanges === 1 ? 'change' : 'changes'} queued`;
      reason = `Waiting for storage — ${queued}. ${error!.message}`;
    }
    setState(next.state, reason, {
      lastRun: run,
      lastSuccessAt: outcome === 'success' ? run.finishedAt : status.lastSuccessAt,
      progress: null,
      storage: storageName,
      queuedChanges,
      conflicts: open,
      wouldDelete: error?.code === 'sync-refused' ? (error.details ?? []) : [],
    });
    events.publish('backup-finished', run);
  }

  /** Why automatic runs should wait now (metered network, low battery), or null. */
  async function deferral(): Promise<string | null> {
    if (!probes) return null;
    const cfg = config().backup;
    const [power, metered] = await Promise.all([probes.power().catch(() => null), probes.metered().catch(() => null)]);
    if (cfg.deferOnMetered && metered) return 'The connection is metered: automatic syncs wait for another network. “Back up now” still runs.';
    if (power && power.batteryPercent !== null && !power.charging && power.batteryPercent < cfg.minBatteryPercent) {
      return `The battery is at ${power.batteryPercent}%: automatic syncs wait until it is charging or above ${cfg.minBatteryPercent}%. “Back up now” still runs.`;
    }
    return null;
  }

  let checking = false;
  function kick() {
    if (current || checking || journal.paused() || disposed || journal.pending() === 0) return;
    const asked = journal.requests().some((r) => r.reason === 'manual' || r.reason === 'resume' || r.reason === 'conflict-resolved');
    if (asked || !probes) return begin();
    checking = true;
    void deferral().then((why) => {
      checking = false;
      if (!why) return begin();
      setState('deferred', why, { nextAttemptAt: null });
      schedule(5 * 60_000); // look again in five minutes
    });
  }

  function begin() {
    if (current || journal.paused() || disposed || journal.pending() === 0) return;
    const force = journal.requests().some((r) => r.force);
    const manual = journal.requests().some((r) => r.reason === 'manual');
    const id = crypto.randomUUID();
    const startedAt = now();
    current = { cancel: null, cancelled: false, done: Promise.resolve() };
    setState('running', `Syncing with ${storageDisplay()}…`, { progress: null, nextAttemptAt: null });
    current.done = execute(id, startedAt, force, manual).finally(() => {
      current = null;
      // Requests that arrived during the run go now; older ones wait for the scheduled retry.
      if (journal.since(startedAt).length) kick();
    });
  }

  /** After a change in the home: how many changes are only on this laptop now (the safety line says so). */
  let counting: NodeJS.Timeout | null = null;
  function recount() {
    if (counting) clearTimeout(counting);
    counting = setTimeout(() => {
      counting = null;
      if (current || disposed) return;
      void countLocalChanges().then((n) => {
        if (current || disposed || n === status.queuedChanges) return;
        setState(status.state, status.reason, { queuedChanges: n });
      });
    }, 2000);
    counting.unref?.();
  }

  function watchHome() {
    if (!autoStart || !config().backup.watchHome) return;
    try {
      // Never react to what is never synced: without this, a run writing into the built-in storage
      // (~/.local/share/tabula/storage, inside the home) woke the watcher, which started a second run
      // 30 s after every run, and so on for ever.
      const ignore = () =>
        [...defaultExcludes(paths, safe(() => parseStorageUrl(config().storage.url), null)), `/${path.relative(paths.home, paths.dataDir)}/`]
          .filter((e) => e.startsWith('/') && e.endsWith('/') && !e.startsWith('/..'))
          .map((e) => e.slice(1));
      let ignored = ignore();
      watcher = fs.watch(paths.home, { recursive: true, persistent: false }, (_type, name) => {
        const rel = String(name ?? '');
        // Inside an ignored folder, or one of its parents (made when the storage folder was created).
        if (ignored.some((i) => (rel + '/').startsWith(i) || i.startsWith(rel + '/'))) return;
        if (debounce) clearTimeout(debounce);
        debounce = setTimeout(() => {
          ignored = ignore();
          request('change');
        }, config().backup.debounceSeconds * 1000);
        debounce.unref?.();
        recount();
      });
      watcher.on('error', () => watcher?.close());
    } catch (err) {
      reportProblem?.(`Changes in the home are not watched (${(err as Error).message}); the schedule still runs.`);
    }
  }

  function request(reason: string, force = false) {
    journal.add(reason, { force });
    kick();
  }

  function updateUserConfig(patch: (c: Record<string, unknown>) => void) {
    const file = paths.userConfigFile;
    const read = readJsonFile(file, z.record(z.string(), z.unknown()));
    if (read.status === 'invalid') throw new TabulaError('invalid-argument', `${file} ${read.problem}; fix it before changing settings here.`);
    const value = read.status === 'ok' ? read.value : {};
    patch(value);
    writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
  }

  // storage.url may change in a config file at any time (the user, the fleet): look every few
  // seconds, so the window and tray stop describing the old storage without waiting for a client.
  let configCheck: NodeJS.Timeout | null = null;

  const api = {
    /** Watches the home and the config, arms the schedule, and runs what is queued from before a restart or reboot. */
    startAutomatic() {
      if (!autoStart || disposed) return;
      configCheck = setInterval(() => void api.status(), 5000);
      configCheck.unref?.();
      watchHome();
      // A home never synced with the storage the image names (a new laptop, a first login) is
      // restored at once, not after the first interval: the person's files should be there when
      // they sit down. A storage the person chose themselves waits for them ("Back up now" in the
      // window they are looking at) or for the interval.
      const cfg = config();
      const restoreNow = !status.lastSuccessAt && !isLocalOnly(cfg.storage.url) && safe(() => loadConfig(paths, { systemOnly: true }).config.storage.url === cfg.storage.url, false);
      if (journal.pending()) setImmediate(kick);
      else schedule(restoreNow ? 0 : cfg.backup.intervalMinutes * 60_000);
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
        conflicts: describeConflicts(status.conflicts),
        excludes: cfg.backup.excludes,
        bandwidthLimitKBps: cfg.backup.bandwidthLimitKBps,
      };
    },
    history: (limit = 50): BackupRun[] => runs.slice(-limit).reverse(),
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
      if (!current) setState('paused', 'Sync is paused. Changes wait until you resume.', { paused: true, nextAttemptAt: null });
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
      const list = conflicts.load().value;
      const c = findConflict(list, homeRelative(p, paths.home));
      const abs = (r: string) => path.join(paths.home, r);
      const { mine, theirs } = sides(c);
      if (keep !== 'both') {
        const [winner, loser] = keep === 'mine' ? [mine, theirs] : [theirs, mine];
        // The loser is not lost: the sync moves its storage copy into the versions area, and an edit
        // made here since the conflict is kept in the local versions folder. The winner takes the
        // name without ever replacing a file (rename would, silently).
        const aside = path.join(paths.stateDir, 'versions', `resolved-${Date.now()}`, loser);
        if (fs.lstatSync(abs(loser), { throwIfNoEntry: false })) moveNoClobber(abs(loser), aside);
        if (winner === c.conflictPath) moveNoClobber(abs(c.conflictPath), abs(c.path));
      }
      conflicts.save(list.filter((x) => x !== c));
      status = { ...status, conflicts: conflicts.load().value };
      if (!journal.paused()) request('conflict-resolved');
      return { resolved: c.path };
    },
    /** Opens one version of a conflict (only those: the window cannot name any other file). */
    async openConflict(p: string, side: 'this-laptop' | 'storage', reveal: boolean): Promise<{ opened: string }> {
      const rel = homeRelative(p, paths.home);
      const c = findConflict(conflicts.load().value, rel);
      if (!opener) throw new TabulaError('tool-missing', 'Opening files is not available here.');
      const { mine, theirs } = sides(c);
      const target = side === 'this-laptop' ? mine : theirs;
      await opener.open(path.join(paths.home, target), { reveal });
      return { opened: target };
    },
    async versions(p: string) {
      return listVersions(endpoints().remote, homeRelative(p, paths.home));
    },
    async restore(p: string, at?: string, to?: string) {
      const { remote } = endpoints();
      const rel = homeRelative(p, paths.home);
      const version = pickVersion(await listVersions(remote, rel), at ? new Date(at) : undefined);
      if (!version) throw new TabulaError('invalid-argument', `The storage keeps no ${at ? 'such ' : 'older '}version of ${displayPath(path.join(paths.home, rel), paths.home)}.`);
      const restoredTo = await restoreVersion({ storage: remote, home: paths.home, rel, version, to, localBackupDir: path.join(paths.stateDir, 'versions', `restore-${Date.now()}`) });
      return { restoredTo, version };
    },
    /** For the reimage guard: what in the home is not on the storage yet (a dry run of the sync). */
    async unsyncedChanges(): Promise<HomeSafetyReport> {
      const queued = journal.pending();
      if (current) return { count: 0, paths: [], queued: Math.max(queued, 1), unknownReason: 'A sync is running right now; wait for it to finish.' };
      try {
        const { home, remote, excludes } = endpoints();
        const s = await runSync({ home, storage: remote, excludes, stateDir: paths.stateDir, host: os.hostname(), dryRun: true, force: true });
        const unsynced = [...s.pushed, ...s.conflicts.map((c) => c.path)];
        return { count: unsynced.length, paths: unsynced.slice(0, 200).map((p) => `~/${p}`), queued, unknownReason: null };
      } catch (err) {
        return { count: 0, paths: [], queued, unknownReason: `${toErrorInfo(err).message} Tabula cannot tell whether your files are safe.` };
      }
    },
    async whenIdle(): Promise<void> {
      while (current) await current.done;
    },
    /** Ends the ssh connection kept between runs (when the agent stops). */
    async closeConnection(): Promise<void> {
      await safe(() => endpoints().remote.close(), Promise.resolve());
    },
    dispose() {
      disposed = true;
      if (timer) clearTimeout(timer);
      if (debounce) clearTimeout(debounce);
      if (counting) clearTimeout(counting);
      if (configCheck) clearInterval(configCheck);
      watcher?.close();
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

function stateAfter(run: BackupRun, openConflicts: number): { state: BackupState; reason: string } {
  if (run.outcome === 'success') {
    if (openConflicts) return { state: 'attention', reason: `${openConflicts} ${openConflicts === 1 ? 'conflict needs' : 'conflicts need'} you: both versions are kept, choose which stays.` };
    const moved = run.pulled + run.pushed + run.deleted;
    return { state: 'idle', reason: moved ? `All synced (${describeMoves(run)}).` : 'All synced (nothing had changed).' };
  }
  const error = run.error!;
  if (error.code === 'storage-unreachable') return { state: 'offline', reason: error.message };
  if (error.code === 'sync-refused') return { state: 'attention', reason: error.message };
  return { state: 'failed', reason: error.message };
}

function describeMoves(run: BackupRun): string {
  const parts: string[] = [];
  const n = (k: number, word: string) => `${k} ${k === 1 ? 'file' : 'files'} ${word}`;
  if (run.pushed) parts.push(n(run.pushed, 'backed up'));
  if (run.pulled) parts.push(n(run.pulled, 'brought in'));
  if (run.deleted) parts.push(n(run.deleted, 'deleted'));
  return parts.join(', ');
}
