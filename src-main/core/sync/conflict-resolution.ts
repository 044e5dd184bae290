// Conflicts as the person settles them: both versions described as they are now, settled by keeping
// mine, theirs or both (the loser is not lost: the next sync moves the storage's copy into the
// versions area), and opened for a look. Only recorded conflicts can be named: the window cannot
// open or delete any other file through here.
import fs from 'node:fs';
import path from 'node:path';
import type { ConflictInfo, ConflictVersion } from '../../common/contract/sync';
import { TabulaError } from '../../common/errors';
import type { DesktopOpener } from '../desktop-open';
import { displayPath } from '../paths';
import { conflictStore } from './conflict-store';
import { moveNoClobber } from './conflicts';
import { homeRelative } from './versions';

/** Which file is whose: ours sits under the name when we kept it, else under the conflict name. */
const sides = (c: ConflictInfo) => (c.kept === 'local' ? { mine: c.path, theirs: c.conflictPath } : { mine: c.conflictPath, theirs: c.path });

/** `thisHost`: the name the runs give this laptop (conflict copies, origin records): the inbox says the same. */
export function createConflictResolution({ home, stateDir, thisHost, opener, reportProblem }: { home: string; stateDir: string; thisHost: () => string; opener?: DesktopOpener; reportProblem?: (message: string) => void }) {
  const store = conflictStore(stateDir);
  let reported: string | null = null;
  /** The record as it is on disk; damage is said once (the conflict copies themselves stay in the home). */
  const load = (): ConflictInfo[] => {
    const { value, problem } = store.load();
    if (problem && problem !== reported) reportProblem?.(`The list of sync conflicts: ${problem}`);
    reported = problem;
    return value;
  };

  /**
   * The conflict a path names: its copy's name always names one; the file's own name only while one
   * conflict is open on it (a second conflict on the same file is told apart by its copy).
   */
  function find(p: string): { list: ConflictInfo[]; c: ConflictInfo } {
    const rel = homeRelative(p, home);
    const list = load();
    const byCopy = list.find((x) => x.conflictPath === rel);
    if (byCopy) return { list, c: byCopy };
    const byName = list.filter((x) => x.path === rel);
    const shown = (r: string) => displayPath(path.join(home, r), home);
    if (!byName.length) throw new TabulaError('invalid-argument', `There is no conflict for ${shown(rel)}.`);
    if (byName.length > 1) throw new TabulaError('invalid-argument', `${shown(rel)} has ${byName.length} conflicts: name the conflict copy (${byName.map((x) => shown(x.conflictPath)).join(', ')}).`);
    return { list, c: byName[0]! };
  }

  return {
    /** The open conflicts as recorded. */
    open: (): ConflictInfo[] => load(),
    /** Each conflict with both versions as they are now: size, time, and where each came from. */
    describe(list: ConflictInfo[]): ConflictInfo[] {
      const version = (rel: string, host: string | null): ConflictVersion | null => {
        const st = fs.lstatSync(path.join(home, rel), { throwIfNoEntry: false });
        return st ? { path: rel, size: st.size, modifiedAt: st.mtime.toISOString(), host } : null;
      };
      return list.map((c) => {
        const { mine, theirs } = sides(c);
        return { ...c, versions: { thisLaptop: version(mine, thisHost()), storage: version(theirs, c.from ?? null) } };
      });
    },
    resolve(p: string, keep: 'mine' | 'theirs' | 'both'): { resolved: string } {
      const { list, c } = find(p);
      const abs = (r: string) => path.join(home, r);
      const { mine, theirs } = sides(c);
      if (keep !== 'both') {
        const [winner, loser] = keep === 'mine' ? [mine, theirs] : [theirs, mine];
        // Checked before anything moves: with the chosen copy deleted or moved away, the other one
        // would go aside and the name be left empty.
        if (!fs.lstatSync(abs(winner), { throwIfNoEntry: false })) {
          throw new TabulaError('invalid-argument', `Not settled: ${keep === 'mine' ? 'your' : 'the other'} version (${displayPath(abs(winner), home)}) is no longer there. Nothing was changed.`);
        }
        // The loser is not lost: the sync moves its storage copy into the versions area, and an edit
        // made here since the conflict is kept in the local versions folder. The winner takes the
        // name without ever replacing a file (rename would, silently).
        const aside = path.join(stateDir, 'versions', `resolved-${Date.now()}`, loser);
        if (fs.lstatSync(abs(loser), { throwIfNoEntry: false })) moveNoClobber(abs(loser), aside);
        if (winner === c.conflictPath) moveNoClobber(abs(c.conflictPath), abs(c.path));
      }
      store.save(list.filter((x) => x !== c));
      return { resolved: c.path };
    },
    /** Opens one version of a conflict (only those: the window cannot name any other file). */
    async openVersion(p: string, side: 'this-laptop' | 'storage', reveal: boolean): Promise<{ opened: string }> {
      const { c } = find(p);
      if (!opener) throw new TabulaError('tool-missing', 'Opening files is not available here.');
      const { mine, theirs } = sides(c);
      const target = side === 'this-laptop' ? mine : theirs;
      await opener.open(path.join(home, target), { reveal });
      return { opened: target };
    },
  };
}
export type ConflictResolution = ReturnType<typeof createConflictResolution>;
