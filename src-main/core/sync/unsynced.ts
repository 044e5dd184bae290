// For the reimage guard: what in the home is not on the storage yet, by a dry run of the sync.
import type { HomeSafetyReport } from '../../common/contract/helpdesk';
import { toErrorInfo } from '../../common/errors';
import type { Journal } from '../runtime/journal';
import type { Exclusive } from '../runtime/schedule';
import { runSync } from './engine';
import type { RunOptions } from './options';

export async function unsyncedChanges({ journal, running, spool, runOptions }: { journal: Journal; running: boolean; spool: Exclusive; runOptions: () => RunOptions }): Promise<HomeSafetyReport> {
  const queued = journal.pending();
  if (running) return { count: 0, paths: [], queued: Math.max(queued, 1), unknownReason: 'A sync is running right now; wait for it to finish.' };
  try {
    const s = await spool.run(() => runSync({ ...runOptions(), dryRun: true, force: true }));
    // The summary names the first of them; the count is of all.
    const unsynced = [...s.conflicts.map((c) => c.path), ...s.pushed];
    return { count: s.counts.pushed + s.conflicts.length, paths: unsynced.slice(0, 200).map((p) => `~/${p}`), queued, unknownReason: null };
  } catch (err) {
    return { count: 0, paths: [], queued, unknownReason: `${toErrorInfo(err).message} Tabula cannot tell whether your files are safe.` };
  }
}
