// How many changes in the home the storage does not have yet, counted against the archive: after
// a run that did not land, and (debounced) after a change in the home, for the safety line.
import type { Clock } from '../runtime/clock';
import type { ChangeJournal } from './change-journal';
import { countLocalChanges } from './engine';
import type { RunOptions } from './options';
import type { SyncStatus } from './sync-status';

export interface ChangeCountDeps {
  clock: Clock;
  stateDir: string;
  runOptions: () => RunOptions;
  changeJournal: () => ChangeJournal | null;
  status: SyncStatus;
  /** A run or a stop makes the count moot: the run tells it, the stop needs none. */
  busy: () => boolean;
}

export function createChangeCount({ clock, stateDir, runOptions, changeJournal, status, busy }: ChangeCountDeps) {
  /**
   * Changes in the home the storage does not have yet, against the archive; null when that cannot be
   * told. Only the folders the change journal marked are listed (the whole home when it cannot vouch).
   */
  async function count(): Promise<number | null> {
    try {
      const { home, storage, excludes } = runOptions();
      const cj = changeJournal();
      const changes = cj ? await cj.peek() : null;
      return await countLocalChanges(home, excludes, stateDir, storage.display, changes);
    } catch {
      return null;
    }
  }

  let counting: unknown = null;
  return {
    count,
    /** After a change in the home: how many changes are only on this laptop now (the safety line says so). */
    recount() {
      if (counting !== null) clock.clearTimeout(counting);
      counting = clock.setTimeout(() => {
        counting = null;
        if (busy()) return;
        void count().then((n) => {
          const s = status.get();
          if (busy() || n === s.queuedChanges) return;
          status.set(s.state, s.reason, { queuedChanges: n });
        });
      }, 2000);
    },
    dispose() {
      if (counting !== null) clock.clearTimeout(counting);
      counting = null;
    },
  };
}
