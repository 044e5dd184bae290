// The runs of the sync as the window and `tabula backup status` show them: kept on disk (the last 500),
// and what state a finished run leaves the sync in, with a reason a person can read.
import path from 'node:path';
import { z } from 'zod';
import type { BackupRun, BackupState, RunOutcome } from '../../common/contract/sync';
import { errorCodes, type ErrorInfo } from '../../common/errors';
import { createJsonStore } from '../atomic-file';
import type { SyncSummary } from './engine';

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
  error: z.object({ code: z.enum(errorCodes), message: z.string(), retryable: z.boolean(), details: z.array(z.string()).optional(), detailsTotal: z.number().int().min(0).optional() }).nullable(),
}) as z.ZodType<BackupRun>;
const HISTORY_LIMIT = 500;

export function createRunHistory(stateDir: string, reportProblem?: (message: string) => void) {
  const store = createJsonStore(path.join(stateDir, 'history.json'), z.array(runSchema), () => []);
  const loaded = store.load();
  if (loaded.problem) reportProblem?.(loaded.problem);
  let runs = loaded.value;
  return {
    all: (): readonly BackupRun[] => runs,
    /** Newest first. */
    recent: (limit = 50): BackupRun[] => runs.slice(-limit).reverse(),
    add(run: BackupRun) {
      runs = [...runs, run].slice(-HISTORY_LIMIT);
      try {
        store.save(runs);
      } catch (err) {
        reportProblem?.(`Could not save the sync history: ${(err as Error).message}`);
      }
    },
  };
}
export type RunHistory = ReturnType<typeof createRunHistory>;

/** One run as it is recorded. */
export function runRecord(r: { id: string; startedAt: Date; finishedAt: Date; outcome: RunOutcome; summary: SyncSummary | null; storage: string; error: ErrorInfo | null }): BackupRun {
  const s = r.summary;
  return {
    id: r.id,
    startedAt: r.startedAt.toISOString(),
    finishedAt: r.finishedAt.toISOString(),
    outcome: r.outcome,
    filesTransferred: s ? s.counts.pulled + s.counts.pushed : 0,
    bytesTransferred: s?.bytesTransferred ?? 0,
    pulled: s?.counts.pulled ?? 0,
    pushed: s?.counts.pushed ?? 0,
    deleted: s ? s.counts.deletedLocal + s.counts.deletedRemote : 0,
    conflicts: s?.conflicts.length ?? 0,
    storage: r.storage,
    error: r.error,
  };
}

export function stateAfter(run: BackupRun, openConflicts: number): { state: BackupState; reason: string } {
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
