// The sync's requests in the runtime's journal on disk: which ones a person made (they never wait for
// a better network or more battery), and which ones a finished run answers.
import path from 'node:path';
import type { RunOutcome } from '../../common/contract/sync';
import type { ErrorInfo } from '../../common/errors';
import { createJournal, type Journal, type RunEnd } from '../runtime/journal';

export function createSyncJournal(stateDir: string, now: () => Date, reportProblem?: (message: string) => void): Journal {
  return createJournal({ file: path.join(stateDir, 'queue.json'), now, reportProblem });
}

/** A person is waiting for one of the queued requests: "Back up now", resume, a settled conflict. */
export const personAsked = (journal: Journal) => journal.requests().some((r) => r.reason === 'manual' || r.reason === 'resume' || r.reason === 'conflict-resolved' || r.reason === 'restored');

/**
 * Requests made before a run started are answered by it when it completed (or was refused, or cannot
 * succeed by retrying); a cancelled or interrupted run leaves them for the next one.
 */
export function runEnd(outcome: RunOutcome, error: ErrorInfo | null): RunEnd {
  if (outcome === 'cancelled') return 'cancelled';
  return outcome === 'success' || error?.code === 'sync-refused' || !error?.retryable ? 'completed' : 'failed-will-retry';
}
