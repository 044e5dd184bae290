// "Back up now": a one-way rsync of the home folder to the configured storage, with progress as
// events and every run kept in a history that survives restarts.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { BackupProgress, BackupRun, BackupState, BackupStatus, RunOutcome } from '../common/contract';
import { errorCodes, TabulaError, toErrorInfo, type ErrorInfo } from '../common/errors';
import type { EventLog } from '../common/event-log';
import { createJsonStore } from './atomic-file';
import type { TabulaConfig } from './config';
import type { Paths } from './paths';
import { parseableOutput, runRsync, type RsyncRun } from './rsync';
import { describeRsyncFailure } from './rsync-errors';
import { parseStorageUrl, rsyncTarget, sshCommand, type Storage } from './storage-url';

const runSchema: z.ZodType<BackupRun> = z.object({
  id: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  outcome: z.enum(['success', 'failed', 'cancelled']),
  filesTransferred: z.number(),
  bytesTransferred: z.number(),
  storage: z.string(),
  error: z.object({ code: z.enum(errorCodes), message: z.string(), retryable: z.boolean(), details: z.array(z.string()).optional() }).nullable(),
});
const HISTORY_LIMIT = 500;

/** Never copied: caches, trash, and Tabula's own machine-local state. */
export function defaultExcludes(paths: Paths, storage: Storage): string[] {
  const inHome = (p: string) => (p.startsWith(paths.home + '/') ? [`/${path.relative(paths.home, p)}/`] : []);
  return [
    '/.cache/',
    '/.thumbnails/',
    '/.local/share/Trash/',
    ...inHome(paths.stateDir),
    ...inHome(paths.runtimeDir),
    ...(storage.kind === 'local' ? inHome(storage.path) : []),
  ];
}

export interface BackupDeps {
  paths: Paths;
  getConfig: () => TabulaConfig;
  events: EventLog;
  now?: () => Date;
  rsyncPath?: string;
  /** Problems reading Tabula's own files (e.g. a damaged history), for the status. */
  reportProblem?: (message: string) => void;
}

export type BackupService = ReturnType<typeof createBackupService>;

export function createBackupService({ paths, getConfig, events, now = () => new Date(), rsyncPath, reportProblem }: BackupDeps) {
  const history = createJsonStore(path.join(paths.stateDir, 'history.json'), z.array(runSchema), () => []);
  const loaded = history.load();
  if (loaded.problem) reportProblem?.(`Backup history: ${loaded.problem}`);
  let runs = loaded.value;
  let current: { id: string; rsync: RsyncRun | null; cancelled: boolean; done: Promise<void> } | null = null;
  const storageDisplay = () => safeStorageDisplay(getConfig().storage.url);

  let status: BackupStatus = initialStatus(runs, storageDisplay(), now());

  function setState(to: BackupState, reason: string, patch: Partial<BackupStatus> = {}) {
    const at = now();
    const from = status.state;
    const durationMs = at.getTime() - Date.parse(status.since);
    status = { ...status, ...patch, state: to, reason, since: at.toISOString() };
    events.publish('backup-state-changed', { from, to, reason, durationMs, status });
  }

  async function execute(id: string, startedAt: Date) {
    let outcome: RunOutcome = 'failed';
    let error: ErrorInfo | null = null;
    let filesTransferred = 0;
    let bytesTransferred = 0;
    let storageName = storageDisplay();
    try {
      const config = getConfig();
      const storage = parseStorageUrl(config.storage.url);
      storageName = storage.display;
      const embeddedDefault = storage.kind === 'local' && storage.path === path.join(paths.dataDir, 'storage');
      // A NAS folder that is missing is most likely not mounted: never fill the mount point instead.
      if (storage.kind === 'local' && !embeddedDefault && !fs.existsSync(storage.path)) {
        throw new TabulaError('storage-unreachable', `The storage folder ${storage.path} does not exist or is not mounted.`, { retryable: true });
      }
      const args = [
        '-a',
        '--no-D', // sockets and fifos are not data
        '--partial-dir=.tabula-partial',
        '--no-inc-recursive', // a whole file list first: exact totals for the progress bar
        ...parseableOutput,
        ...(storage.kind === 'ssh' || embeddedDefault ? ['--mkpath'] : []),
        ...(storage.kind === 'ssh' ? ['-e', sshCommand(storage, config.storage.sshOptions, config.storage.connectTimeoutSeconds)] : []),
        ...[...defaultExcludes(paths, storage), ...config.backup.excludes].map((p) => `--exclude=${p}`),
        '--',
        `${paths.home}/`,
        rsyncTarget(storage),
      ];
      const progress: BackupProgress = { bytesDone: 0, bytesTotal: null, percent: 0, filesDone: 0, filesTotal: null, currentFile: null };
      let lastSent = 0;
      const publishProgress = (force = false) => {
        const t = Date.now();
        if (!force && t - lastSent < 200) return;
        lastSent = t;
        status = { ...status, progress: { ...progress } };
        events.publish('backup-progress', { ...progress });
      };
      const rsync = runRsync(
        args,
        {
          item(item) {
            if (/^[<>]f/.test(item.change)) progress.currentFile = item.name;
            publishProgress();
          },
          progress(p) {
            progress.bytesDone = p.bytesDone;
            progress.percent = p.percent;
            if (p.percent >= 1) progress.bytesTotal = Math.round((p.bytesDone * 100) / p.percent);
            if (p.filesTotal !== null) progress.filesTotal = p.filesTotal;
            if (p.filesDone !== null) progress.filesDone = p.filesDone;
            publishProgress();
          },
        },
        { rsyncPath },
      );
      current!.rsync = rsync;
      if (current!.cancelled) rsync.cancel();
      const result = await rsync.done;
      filesTransferred = result.filesTransferred;
      bytesTransferred = result.bytesTransferred;
      if (result.code !== 0) throw describeRsyncFailure(result, { home: paths.home, storage: storage.display, cancelled: current!.cancelled });
      progress.percent = 100;
      progress.filesDone = progress.filesTotal ?? progress.filesDone;
      publishProgress(true);
      outcome = 'success';
    } catch (err) {
      error = toErrorInfo(err);
      outcome = error.code === 'cancelled' ? 'cancelled' : 'failed';
    }
    const run: BackupRun = { id, startedAt: startedAt.toISOString(), finishedAt: now().toISOString(), outcome, filesTransferred, bytesTransferred, storage: storageName, error };
    runs = [...runs, run].slice(-HISTORY_LIMIT);
    try {
      history.save(runs);
    } catch (err) {
      reportProblem?.(`Could not save the backup history: ${(err as Error).message}`);
    }
    const next = stateAfter(run, status.lastSuccessAt);
    setState(next.state, next.reason, { lastRun: run, lastSuccessAt: next.lastSuccessAt, progress: null, storage: storageName });
    events.publish('backup-finished', run);
  }

  return {
    status: (): BackupStatus => (current ? status : { ...status, storage: storageDisplay() }),
    history: (limit = 50): BackupRun[] => runs.slice(-limit).reverse(),
    start(): { runId: string } {
      if (current) throw new TabulaError('already-running', 'A backup is already running.', { retryable: true });
      const id = crypto.randomUUID();
      const startedAt = now();
      current = { id, rsync: null, cancelled: false, done: Promise.resolve() };
      setState('running', `Backing up to ${storageDisplay()}…`, { progress: null });
      current.done = execute(id, startedAt).finally(() => {
        current = null;
      });
      return { runId: id };
    },
    cancel(): { cancelled: boolean } {
      if (!current) return { cancelled: false };
      current.cancelled = true;
      current.rsync?.cancel();
      return { cancelled: true };
    },
    /** Resolves when no run is in progress. */
    async whenIdle(): Promise<void> {
      while (current) await current.done;
    },
  };
}

function safeStorageDisplay(url: string): string {
  try {
    return parseStorageUrl(url).display;
  } catch {
    return url;
  }
}

function stateAfter(run: BackupRun, previousSuccess: string | null): { state: BackupState; reason: string; lastSuccessAt: string | null } {
  if (run.outcome === 'success') {
    const copied = run.filesTransferred === 0 ? 'nothing had changed' : `${run.filesTransferred} ${run.filesTransferred === 1 ? 'file' : 'files'} copied`;
    return { state: 'idle', reason: `All backed up (${copied}).`, lastSuccessAt: run.finishedAt };
  }
  const error = run.error!;
  const state: BackupState = error.code === 'storage-unreachable' ? 'offline' : 'failed';
  return { state, reason: error.message, lastSuccessAt: previousSuccess };
}

function initialStatus(runs: BackupRun[], storage: string, at: Date): BackupStatus {
  const lastRun = runs.at(-1) ?? null;
  const lastSuccess = runs.findLast((r) => r.outcome === 'success')?.finishedAt ?? null;
  const base = { since: at.toISOString(), lastRun, progress: null, storage };
  if (!lastRun) return { ...base, state: 'never', reason: `Not backed up yet. “Back up now” copies your home to ${storage}.`, lastSuccessAt: null };
  return { ...base, ...stateAfter(lastRun, lastSuccess) };
}
