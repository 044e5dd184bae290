// The request journal: what a person (or the schedule) asked for, kept on disk until a run has
// answered it, so that "Back up now" while offline survives restarts and reboots. Only a run that
// completed answers a request; a cancelled or interrupted run (an agent that shuts down, a command
// that exits) leaves it where it is, for the next run.
import { z } from 'zod';
import { createJsonStore } from '../atomic-file';

const journalSchema = z.object({
  paused: z.boolean(),
  // `id` orders requests and runs: a run answers those up to its mark (taken as it starts). Times do
  // not: two in the same millisecond, or a clock set back, mixed up which run answered which request.
  // A queue written before ids has none: numbered in its order when read.
  requests: z.array(z.object({ id: z.number().int().positive().optional(), at: z.string(), reason: z.string(), force: z.boolean().optional() })),
});
export type JournalRequest = z.infer<typeof journalSchema>['requests'][number] & { id: number };

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
  const state = loaded.value as { paused: boolean; requests: JournalRequest[] };
  let lastId = 0;
  for (const r of state.requests) lastId = r.id = Math.max(r.id ?? 0, lastId + 1);

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
      const r: JournalRequest = { id: ++lastId, at: now().toISOString(), reason, ...(opts.force ? { force: true } : {}) };
      state.requests.push(r);
      if (opts.persist !== false) save();
      return r;
    },
    /** Taken as a run starts: the requests it answers (those made so far), for {@link finished}. */
    mark: (): number => lastId,
    /**
     * A run that took `mark` as it started ended: a completed one answers every request made before
     * it started; any other end leaves them all queued.
     */
    finished(mark: number, end: RunEnd) {
      if (end === 'completed') state.requests = state.requests.filter((r) => r.id > mark);
      save();
    },
  };
}
export type Journal = ReturnType<typeof createJournal>;
