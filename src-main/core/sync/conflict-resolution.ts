// Conflicts as the person settles them: both versions described as they are now, settled by keeping
// mine, theirs or both (the loser is not lost: the next sync moves the storage's copy into the
// versions area), and opened for a look. Only recorded conflicts can be named: the window cannot
// open or delete any other file through here.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConflictInfo, ConflictVersion } from '../../common/contract/sync';
import { TabulaError } from '../../common/errors';
import type { DesktopOpener } from '../desktop-open';
import { displayPath } from '../paths';
import { conflictStore } from './conflicts';
import { homeRelative } from './versions';

/** Which file is whose: ours sits under the name when we kept it, else under the conflict name. */
const sides = (c: ConflictInfo) => (c.kept === 'local' ? { mine: c.path, theirs: c.conflictPath } : { mine: c.conflictPath, theirs: c.path });

export function createConflictResolution({ home, stateDir, opener, reportProblem }: { home: string; stateDir: string; opener?: DesktopOpener; reportProblem?: (message: string) => void }) {
  const store = conflictStore(stateDir);
  let reported: string | null = null;
  /** The record as it is on disk; damage is said once (the conflict copies themselves stay in the home). */
  const load = (): ConflictInfo[] => {
    const { value, problem } = store.load();
    if (problem && problem !== reported) reportProblem?.(`The list of sync conflicts: ${problem}`);
    reported = problem;
    return value;
  };

  function find(p: string): { list: ConflictInfo[]; c: ConflictInfo } {
    const rel = homeRelative(p, home);
    const list = load();
    const c = list.find((x) => x.path === rel || x.conflictPath === rel);
    if (!c) throw new TabulaError('invalid-argument', `There is no conflict for ${displayPath(path.join(home, rel), home)}.`);
    return { list, c };
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
        return { ...c, versions: { thisLaptop: version(mine, os.hostname()), storage: version(theirs, c.from ?? null) } };
      });
    },
    resolve(p: string, keep: 'mine' | 'theirs' | 'both'): { resolved: string } {
      const { list, c } = find(p);
      const abs = (r: string) => path.join(home, r);
      const { mine, theirs } = sides(c);
      if (keep !== 'both') {
        const [winner, loser] = keep === 'mine' ? [mine, theirs] : [theirs, mine];
        // The loser is not lost: the sync moves its storage copy into the versions area.
        if (winner === c.conflictPath) fs.renameSync(abs(c.conflictPath), abs(c.path));
        else fs.rmSync(abs(loser), { force: true, recursive: true });
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
