// The decision of a two-way sync, as a pure function of three listings: the archive (both sides as
// they were after the last successful sync), the home now, and the storage now. A change on one side
// propagates; a deletion propagates only over an unchanged copy; delete-versus-modify keeps the
// modified file; both changed to different content is a conflict that keeps both.
import { append, wholeSeconds, type Entry, type Tree } from './tree';

export type Side = 'local' | 'remote';

export interface PlannedConflict {
  path: string;
  /** The side whose version keeps the name (the newer one; for a file-versus-folder clash, the folder). */
  keep: Side;
}

export interface SyncPlan {
  push: string[];
  pull: string[];
  deleteRemote: string[];
  deleteLocal: string[];
  conflicts: PlannedConflict[];
  /** Both sides changed to the same size but different times: the content decides (identical → push times). */
  compare: string[];
  /** Both sides changed the same way: only the archive needs to learn it. */
  agreed: string[];
}

/**
 * How times compare: `exact` to the nanosecond (the home against its own record); `stored` for the
 * storage against the record: exact, unless the storage keeps whole seconds only (then the second must
 * match); `seconds` across the two sides.
 */
export type TimeMatch = 'exact' | 'stored' | 'seconds';

export function sameEntry(a: Entry | undefined, b: Entry | undefined, match: TimeMatch = 'seconds'): boolean {
  if (!a || !b) return a === b;
  if (a.type !== b.type) return false;
  // A folder's permissions (its size) count only for the home against its own record: a folder made
  // private here is sent, so the storage keeps it private. A change on the storage's side is never read
  // as one: a storage that keeps no modes (a CIFS or FAT mount shows 0777) would open every folder of
  // the home. 0 is an archive of before, which knew no modes.
  if (a.type === 'd') return match !== 'exact' || a.size === b.size || !a.size || !b.size;
  if (a.size !== b.size) return false;
  // The home against its own record: a new inode or change time is an edit, whatever size and time say.
  if (match === 'exact' && a.stamp !== undefined && b.stamp !== undefined && a.stamp !== b.stamp) return false;
  // The storage's listing against the storage's own record, likewise.
  if (match === 'stored' && a.stamp !== undefined && b.remoteStamp !== undefined && a.stamp !== b.remoteStamp) return false;
  if (a.mtime === b.mtime) return true;
  if (match === 'exact') return false;
  if (match === 'stored') return a.mtime % 1_000_000_000n === 0n && wholeSeconds(a.mtime) === wholeSeconds(b.mtime);
  return wholeSeconds(a.mtime) === wholeSeconds(b.mtime);
}

/** What one path needs, decided from its three entries alone. */
export type PathAction =
  | { do: 'nothing' }
  | { do: 'push' }
  | { do: 'pull' }
  | { do: 'delete-remote' }
  | { do: 'delete-local' }
  /** Both sides changed the same way (or both deleted): only the archive learns it. */
  | { do: 'agreed' }
  /** Both changed to files of one size: the content decides (same → agreed on times, else a conflict). */
  | { do: 'compare' }
  | { do: 'conflict'; keep: Side };

/**
 * The per-path decision, shared by every planner (the whole-tree one below and a streaming merge): the
 * archive entry (both sides at the last sync), the home's entry and the storage's entry → the action.
 */
export function decidePath(a: Entry | undefined, l: Entry | undefined, r: Entry | undefined): PathAction {
  // The archive holds what was listed here (or copied here with its time): an edit in the same
  // second as the last sync still counts, on both sides.
  const localChanged = !sameEntry(l, a, 'exact');
  const remoteChanged = !sameEntry(r, a, 'stored');
  if (!localChanged && !remoteChanged) return { do: 'nothing' };
  if (localChanged && !remoteChanged) return { do: l ? 'push' : 'delete-remote' };
  if (!localChanged) return { do: r ? 'pull' : 'delete-local' };
  if (!l && !r) return { do: 'agreed' };
  if (!r) return { do: 'push' }; // deleted there, modified here: keep the modified one
  if (!l) return { do: 'pull' };
  // Same size on both sides: even the very same time can hide different content (two edits in one
  // second, or a time set by hand), so the content decides.
  if (l.type === 'f' && r.type === 'f' && l.size === r.size) return { do: 'compare' };
  if (l.type === 'd' && r.type === 'd') return { do: 'agreed' };
  if (l.type === 'l' && r.type === 'l' && l.size === r.size && l.mtime === r.mtime) return { do: 'agreed' }; // one copied from the other
  return { do: 'conflict', keep: keepSide(l, r) };
}

const parentsOf = function* (p: string) {
  for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) yield p.slice(0, i);
};

export function planSync(archive: Tree, local: Tree, remote: Tree): SyncPlan {
  const plan: SyncPlan = { push: [], pull: [], deleteRemote: [], deleteLocal: [], conflicts: [], compare: [], agreed: [] };
  const paths = new Set([...archive.keys(), ...local.keys(), ...remote.keys()]);
  for (const p of paths) addDecision(plan, p, decidePath(archive.get(p), local.get(p), remote.get(p)));
  return settleFolders(plan, local, remote);
}

/** Files one path's decision in the plan's list for it. */
function addDecision(plan: SyncPlan, p: string, d: PathAction): void {
  if (d.do === 'push') plan.push.push(p);
  else if (d.do === 'pull') plan.pull.push(p);
  else if (d.do === 'delete-remote') plan.deleteRemote.push(p);
  else if (d.do === 'delete-local') plan.deleteLocal.push(p);
  else if (d.do === 'agreed') plan.agreed.push(p);
  else if (d.do === 'compare') plan.compare.push(p);
  else if (d.do === 'conflict') plan.conflicts.push({ path: p, keep: d.keep });
}

/**
 * Where the streaming planner files each decision: the path, its action, its three types ("<archive>
 * <home><storage>", '-' for none) and whether it comes out of name order (folders settled at the end).
 * The default keeps the plan in arrays; a sync writes the long lists to files (path-list.ts).
 */
export type PlanSink = (p: string, d: PathAction, kinds: string, late: boolean) => void;

const kindsOf = (a: Entry | undefined, l: Entry | undefined, r: Entry | undefined) => `${a?.type ?? '-'}${l?.type ?? '-'}${r?.type ?? '-'}`;

/**
 * The same plan as {@link planSync}, built one path at a time in name order (byte order: a folder comes
 * before what it holds) by the streaming merge, holding only what changes. What a single path cannot
 * see ({@link settleFolders}) concerns only folders of the archive that one side deleted or turned into
 * something else; those few wait until the end, when all that lies inside them has been seen.
 */
export function createPlanner(sink?: PlanSink) {
  const plan: SyncPlan = { push: [], pull: [], deleteRemote: [], deleteLocal: [], conflicts: [], compare: [], agreed: [] };
  // Folders of the archive whose decision waits, with what it needs; and the marks settleFolders makes.
  const waiting = new Map<string, { d: PathAction; l: Entry | undefined; r: Entry | undefined }>();
  const kept = new Set<string>();
  const fromRemote = new Set<string>();
  const fromLocal = new Set<string>();
  const put: PlanSink = sink ?? ((p, d) => addDecision(plan, p, d));
  return {
    plan,
    /** Decides one path; returns the decision (before folders are settled). */
    add(p: string, a: Entry | undefined, l: Entry | undefined, r: Entry | undefined): PathAction {
      const d = decidePath(a, l, r);
      if (d.do === 'nothing') return d;
      if (waiting.size && d.do !== 'agreed' && !d.do.startsWith('delete')) {
        for (const f of parentsOf(p)) {
          if (!waiting.has(f)) continue;
          kept.add(f);
          if (d.do === 'pull') fromRemote.add(f);
          else if (d.do === 'push') fromLocal.add(f);
        }
      }
      if (a?.type === 'd' && (d.do === 'push' || d.do === 'pull' || d.do === 'delete-remote' || d.do === 'delete-local')) waiting.set(p, { d, l, r });
      else put(p, d, kindsOf(a, l, r), false);
      return d;
    },
    finish(): SyncPlan {
      for (const [p, { d, l, r }] of waiting) {
        const kinds = kindsOf({ type: 'd', size: 0, mtime: 0n }, l, r);
        if (d.do === 'push' && l?.type !== 'd' && fromRemote.has(p)) put(p, { do: 'conflict', keep: 'remote' }, kinds, true);
        else if (d.do === 'pull' && r?.type !== 'd' && fromLocal.has(p)) put(p, { do: 'conflict', keep: 'local' }, kinds, true);
        else if ((d.do === 'delete-remote' || d.do === 'delete-local') && kept.has(p)) continue;
        else put(p, d, kinds, true);
      }
      waiting.clear();
      return plan;
    },
  };
}

/**
 * What a single path cannot see: a folder deleted (or turned into a file) on one side while something
 * inside it comes from the other side. A deleted folder then stays; a folder replaced by a file becomes
 * a conflict in which the folder keeps the name and the file gets the conflict name.
 */
export function settleFolders(plan: SyncPlan, local: Tree, remote: Tree): SyncPlan {
  const keptFolders = new Set<string>();
  const fromRemote = new Set<string>();
  const fromLocal = new Set<string>();
  for (const p of [...plan.compare, ...plan.conflicts.map((c) => c.path)]) for (const f of parentsOf(p)) keptFolders.add(f);
  for (const [list, from] of [[plan.pull, fromRemote], [plan.push, fromLocal]] as const) {
    for (const p of list) {
      for (const f of parentsOf(p)) {
        keptFolders.add(f);
        from.add(f);
      }
    }
  }
  const clash = (p: string, t: Tree, needed: Set<string>) => needed.has(p) && t.get(p)?.type !== 'd';
  const turned: PlannedConflict[] = [];
  plan.push = plan.push.filter((p) => !(clash(p, local, fromRemote) && turned.push({ path: p, keep: 'remote' })));
  plan.pull = plan.pull.filter((p) => !(clash(p, remote, fromLocal) && turned.push({ path: p, keep: 'local' })));
  append(plan.conflicts, turned);
  plan.deleteRemote = plan.deleteRemote.filter((p) => !keptFolders.has(p));
  plan.deleteLocal = plan.deleteLocal.filter((p) => !keptFolders.has(p));
  return plan;
}

/**
 * Newer keeps the name; a folder always keeps it over a file or link (its contents sync on their own).
 * On a tie the storage's version keeps it: other laptops already have it, and one with the same size and
 * time put in its place would look unchanged to them.
 */
export function keepSide(l: Entry, r: Entry): Side {
  if (l.type === 'd') return 'local';
  if (r.type === 'd') return 'remote';
  return l.mtime > r.mtime ? 'local' : 'remote';
}

export const CONFLICT_MARK = '.conflict-';

function splitName(p: string) {
  const slash = p.lastIndexOf('/');
  const dir = p.slice(0, slash + 1);
  const base = p.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [base.slice(0, dot), base.slice(dot)] : [base, ''];
  return { dir, stem, ext };
}

/** `dir/report.odt` → `dir/report.conflict-20261122-101500-lap1.odt` (hidden files keep their leading dot). */
export function conflictName(p: string, when: Date, host: string): string {
  const { dir, stem, ext } = splitName(p);
  const stamp = when.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const safeHost = host.replace(/[^A-Za-z0-9_-]/g, '_') || 'host';
  return `${dir}${stem}${CONFLICT_MARK}${stamp}-${safeHost}${ext}`;
}

/** What every conflict name of a path begins with (`dir/report.conflict-`). */
export function conflictPrefix(p: string): string {
  const { dir, stem } = splitName(p);
  return `${dir}${stem}${CONFLICT_MARK}`;
}

/** Safety: how many of the archived files each side would delete. */
export function deletionShare(plan: SyncPlan, archive: Tree): { local: number; remote: number; archived: number } {
  let archived = 0;
  for (const e of archive.values()) if (e.type !== 'd') archived++;
  const files = (paths: string[]) => paths.filter((p) => archive.get(p)?.type !== 'd').length;
  return { local: files(plan.deleteLocal), remote: files(plan.deleteRemote), archived };
}
