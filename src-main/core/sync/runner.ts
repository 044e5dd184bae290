// One sync run as the agent makes it: what the journal holds is run once, with progress published
// as it goes, and the run's end recorded (history, journal, state with a reason). The result is
// published only once the schedule has armed the next try (`finished`), so that the event says when.
import crypto from 'node:crypto';
import type { BackupProgress, RunOutcome } from '../../common/contract/sync';
import { TabulaError, toErrorInfo, type ErrorInfo } from '../../common/errors';
import type { EventLog } from '../../common/event-log';
import type { Journal } from '../runtime/journal';
import type { ChangeJournal, TakenChanges } from './change-journal';
import type { ConflictResolution } from './conflict-resolution';
import { runSync, type SyncSummary } from './engine';
import { runRecord, stateAfter, type RunHistory } from './history';
import { runEnd } from './journal';
import type { RunOptions } from './options';
import { pausedReason, type SyncStatus } from './sync-status';

export interface SyncRunnerDeps {
  journal: Journal;
  history: RunHistory;
  conflicts: ConflictResolution;
  status: SyncStatus;
  events: EventLog;
  now: () => Date;
  /** The run's endpoints and options, with the folders a run needs. */
  runOptions: () => RunOptions;
  /** Which folders of the home changed since the last run, while the home is watched. */
  changeJournal: () => ChangeJournal | null;
  /** Changes only on this laptop, null when that cannot be told. */
  countLocalChanges: () => Promise<number | null>;
  disposed: () => boolean;
}

/** `tabula sync` waiting for a run made for it (`sync.run`): answered by the next run that starts. */
interface Waiter {
  force: boolean;
  verify: boolean;
  settle(summary: SyncSummary | null, error: ErrorInfo | null): void;
}

export function createSyncRunner({ journal, history, conflicts, status, events, now, runOptions, changeJournal, countLocalChanges, disposed }: SyncRunnerDeps) {
  let current: { cancel: (() => void) | null; cancelled: boolean; done: Promise<unknown> } | null = null;
  /** A finished run's result, published once the next run is armed (so the event says when). */
  let finishing: ((nextAt: number | null) => void) | null = null;
  /** When the last run ended, by the wall clock and by the monotonic one (which stops while the laptop sleeps). */
  let lastRunEnd: { wall: number; mono: number } | null = null;
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  const waiting: Waiter[] = [];

  /** Runs what the journal holds, if anything; resolves false on a failure worth retrying (the schedule backs off). */
  async function runQueued(): Promise<boolean> {
    if (current) return true;
    if (journal.paused() || disposed()) {
      const why = new TabulaError('not-running', disposed() ? 'The Tabula agent is stopping; the sync did not run.' : 'Sync is paused. Resume it first.').toInfo();
      for (const w of waiting.splice(0)) w.settle(null, why);
      return true;
    }
    if (journal.pending() === 0 && !waiting.length) return true;
    // Those waiting now are answered by this run; whoever asks from here on, by the next.
    const asked = waiting.splice(0);
    const force = journal.requests().some((r) => r.force) || asked.some((w) => w.force);
    const manual = journal.requests().some((r) => r.reason === 'manual') || asked.some((w) => w.verify);
    const id = crypto.randomUUID();
    const startedAt = now();
    const answers = journal.mark();
    current = { cancel: null, cancelled: false, done: Promise.resolve() };
    status.set('running', `Syncing with ${status.storageDisplay()}…`, { progress: null, nextAttemptAt: null });
    const run = execute(id, startedAt, answers, force, manual, asked);
    current.done = run.catch(() => undefined);
    try {
      return await run;
    } finally {
      current = null;
    }
  }

  async function execute(id: string, startedAt: Date, answers: number, force: boolean, manual: boolean, asked: Waiter[]): Promise<boolean> {
    let outcome: RunOutcome = 'failed';
    let error: ErrorInfo | null = null;
    let summary: SyncSummary | null = null;
    let storageName = status.storageDisplay();
    let taken: TakenChanges | null = null;
    try {
      const options = runOptions();
      storageName = options.storage.display;
      // What changed in the home since the last run. "Back up now" lists it all (verify) all the same.
      const cj = changeJournal();
      taken = cj ? await cj.take() : null;
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
        onWaiting: (reason) => status.set('running', reason, {}),
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
          status.patch({ progress });
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
    // `tabula sync` waiting for this run is answered before the agent's own records of it are written
    // (history, request journal: each a file written and flushed to disk, ~10 ms, far more on a busy
    // disk; issue 9). What the run synced is recorded already (the archive, inside runSync); a crash in
    // between costs a history line and a repeated run, never a change.
    for (const w of asked) w.settle(summary, error);
    if (asked.length) await new Promise((resolve) => setImmediate(resolve));
    history.add(run);
    journal.finished(answers, runEnd(outcome, error));
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
      status.set(next.state, reason, {
        lastRun: run,
        lastSuccessAt: outcome === 'success' ? run.finishedAt : status.get().lastSuccessAt,
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

  return {
    runQueued,
    /** The result of the next run that starts (the caller then starts one): its summary, or its error thrown. */
    nextRun(opts: { force: boolean; verify: boolean }): Promise<SyncSummary> {
      return new Promise((resolve, reject) => {
        waiting.push({ ...opts, settle: (summary, error) => (summary ? resolve(summary) : reject(TabulaError.fromInfo(error ?? toErrorInfo(new Error('the run ended without a result'))))) });
      });
    },
    /** After the schedule armed the next try: the last run's result, published with when that is. */
    finished(nextAt: number | null) {
      const publish = finishing;
      finishing = null;
      publish?.(nextAt);
    },
    running: () => current !== null,
    /** Resolves when the run in progress (if any) has ended. */
    idle: () => current?.done,
    cancel(): { cancelled: boolean } {
      if (!current) return { cancelled: false };
      current.cancelled = true;
      current.cancel?.();
      return { cancelled: true };
    },
  };
}
export type SyncRunner = ReturnType<typeof createSyncRunner>;
