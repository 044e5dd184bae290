// The request journal: what a person (or the schedule) asked for, kept on disk until a run has
// answered it, so that "Back up now" while offline survives restarts and reboots. Only a run that
// completed answers a request; a cancelled or interrupted run (an agent that shuts down, a command
// that exits) leaves it where it is, for the next run.
import { z } from 'zod';
import { createJsonStore } from '../atomic-file';

const journalSchema = z.object({
  paused: z.boolean(),
  requests: z.array(z.object({ at: z.string(), reason: z.string(), force: z.boolean().optional() })),
});
export type JournalRequest = z.infer<typeof journalSchema>['requests'][number];

/** How a run ended, as the journal sees it: only 'completed' answers requests. */
export type RunEnd = 'completed' | 'cancelled' | 'interrupted' | 'failed-will-retry';

export interface JournalDeps {
  file: string;
  now: () => Date;
  reportProblem?: (message: string) => void;
}

export function createJournal({ file, now, reportProblem }: JournalDeps) {
  const store = createJsonStore(file, journalSchema, () => ({ paused: false, requests: [] }));
  const loaded = store.load();
  if (loaded.problem) reportProblem?.(loaded.problem);
  const state = loaded.value;

  function save() {
    try {
      store.save(state);
    } catch (err) {
      reportProblem?.(`Could not save the request queue: ${(err as Error).message}`);
    }
  }

  return {
    requests: (): readonly JournalRequest[] => state.requests,
    pending: () => state.requests.length,
    paused: () => state.paused,
    setPaused(paused: boolean) {
      state.paused = paused;
      save();
    },
    /** Records a request on disk before anything acts on it. */
    add(reason: string, opts: { force?: boolean; persist?: boolean } = {}): JournalRequest {
      const r: JournalRequest = { at: now().toISOString(), reason, ...(opts.force ? { force: true } : {}) };
      state.requests.push(r);
      if (opts.persist !== false) save();
      return r;
    },
    /** Requests made after `t` (they arrived while a run that started at `t` was going). */
    since: (t: Date) => state.requests.filter((r) => Date.parse(r.at) > t.getTime()),
    /**
     * A run that started at `startedAt` ended: a completed one answers every request made before it
     * started; any other end leaves them all queued.
     */
    finished(startedAt: Date, end: RunEnd) {
      if (end === 'completed') state.requests = state.requests.filter((r) => Date.parse(r.at) > startedAt.getTime());
      save();
    },
  };
}
export type Journal = ReturnType<typeof createJournal>;
