// The decision of a two-way sync, as a pure function of three listings: the archive (both sides as
// they were after the last successful sync), the home now, and the storage now. A change on one side
// propagates; a deletion propagates only over an unchanged copy; delete-versus-modify keeps the
// modified file; both changed to different content is a conflict that keeps both.
import type { Entry, Tree } from './tree';

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
 * How times compare: `exact` to the fraction (the home against its own record); `stored` for the
 * storage against the record: exact, unless the storage keeps whole seconds only (then the second must
 * match); `seconds` across the two sides.
 */
export type TimeMatch = 'exact' | 'stored' | 'seconds';

export function sameEntry(a: Entry | undefined, b: Entry | undefined, match: TimeMatch = 'seconds'): boolean {
  if (!a || !b) return a === b;
  if (a.type !== b.type) return false;
  if (a.type === 'd') return true;
  if (a.size !== b.size) return false;
  // The home against its own record: a new inode or change time is an edit, whatever size and time say.
  if (match === 'exact' && a.stamp !== undefined && b.stamp !== undefined && a.stamp !== b.stamp) return false;
  // The storage's listing against the storage's own record, likewise.
  if (match === 'stored' && a.stamp !== undefined && b.remoteStamp !== undefined && a.stamp !== b.remoteStamp) return false;
  if (a.mtime === b.mtime) return true;
  if (match === 'exact') return false;
  if (match === 'stored') return Number.isInteger(a.mtime) && a.mtime === Math.floor(b.mtime);
  return Math.floor(a.mtime) === Math.floor(b.mtime);
}

export function planSync(archive: Tree, local: Tree, remote: Tree): SyncPlan {
  const plan: SyncPlan = { push: [], pull: [], deleteRemote: [], deleteLocal: [], conflicts: [], compare: [], agreed: [] };
  const paths = new Set([...archive.keys(), ...local.keys(), ...remote.keys()]);
  for (const p of paths) {
    const a = archive.get(p);
    const l = local.get(p);
    const r = remote.get(p);
    // The archive holds what was listed here (or copied here with its time): an edit in the same
    // second as the last sync still counts, on both sides.
    const localChanged = !sameEntry(l, a, 'exact');
    const remoteChanged = !sameEntry(r, a, 'stored');
    if (!localChanged && !remoteChanged) continue;
    if (localChanged && !remoteChanged) {
      (l ? plan.push : plan.deleteRemote).push(p);
    } else if (!localChanged && remoteChanged) {
      (r ? plan.pull : plan.deleteLocal).push(p);
    } else if (!l && !r) {
      plan.agreed.push(p);
    } else if (!r) {
      plan.push.push(p); // deleted there, modified here: keep the modified one
    } else if (!l) {
      plan.pull.push(p);
    } else if (l.type === 'f' && r.type === 'f' && l.size === r.size) {
      // Same size: the very same time means one copy of the other; otherwise the content decides.
      (l.mtime === r.mtime ? plan.agreed : plan.compare).push(p);
    } else if (sameEntry(l, r)) {
      plan.agreed.push(p); // folders, or links with the same target length and time
    } else {
      plan.conflicts.push({ path: p, keep: keepSide(l, r) });
    }
  }
  // A folder deleted on one side stays if anything inside it survives (e.g. a file modified there).
  const keptFolders = new Set<string>();
  for (const p of [...plan.push, ...plan.pull, ...plan.compare, ...plan.conflicts.map((c) => c.path)]) {
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) keptFolders.add(p.slice(0, i));
  }
  plan.deleteRemote = plan.deleteRemote.filter((p) => !keptFolders.has(p));
  plan.deleteLocal = plan.deleteLocal.filter((p) => !keptFolders.has(p));
  return plan;
}

/** Newer keeps the name; a folder always keeps it over a file or link (its contents sync on their own). */
export function keepSide(l: Entry, r: Entry): Side {
  if (l.type === 'd') return 'local';
  if (r.type === 'd') return 'remote';
  return l.mtime >= r.mtime ? 'local' : 'remote';
}

/** `dir/report.odt` → `dir/report.conflict-20261122-101500-lap1.odt` (hidden files keep their leading dot). */
export function conflictName(p: string, when: Date, host: string): string {
  const slash = p.lastIndexOf('/');
  const dir = p.slice(0, slash + 1);
  const base = p.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [base.slice(0, dot), base.slice(dot)] : [base, ''];
  const stamp = when.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const safeHost = host.replace(/[^A-Za-z0-9_-]/g, '_') || 'host';
  return `${dir}${stem}.conflict-${stamp}-${safeHost}${ext}`;
}

/** Safety: how many of the archived files each side would delete. */
export function deletionShare(plan: SyncPlan, archive: Tree): { local: number; remote: number; archived: number } {
  let archived = 0;
  for (const e of archive.values()) if (e.type !== 'd') archived++;
  const files = (paths: string[]) => paths.filter((p) => archive.get(p)?.type !== 'd').length;
  return { local: files(plan.deleteLocal), remote: files(plan.deleteRemote), archived };
}
