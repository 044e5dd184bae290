// The home's listing when the change journal says which folders changed: those folders are listed
// (by the same find -printf records as the full listing, sorted the same way, through the same filter
// and excludes), and everything else is the home as the archive recorded it after the last sync. An
// idle laptop's run then stats a handful of folders instead of the whole home; both are read as one
// sorted stream (see {@link overlayBatches}), so memory does not grow with the home either.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { TabulaError } from '../../common/errors';
import type { LocalChanges } from './change-journal';
import type { Endpoint } from './endpoint';
import { createMatcher, prunableDirs } from './excludes';
import { compareNames, hashFile, type ListingFile } from './listing';
import { Cursor, type Batches, type Listed } from './merge';
import { PARTIAL_DIR, STORAGE_AREA, type Entry } from './tree';

/** The changed folders, as listed: `folders` one level deep, `trees` with all they hold. */
export interface ListedChanges {
  folders: string[];
  trees: string[];
}

// $1 the home, $2 a file of folders to list one level deep, $3 a file of folders to list whole (both
// NUL-separated ./relative paths: find -files0-from). Prints the records of listScript (tree.ts) with
// the name behind "./", sorted by name like the full listing, each name once (a folder listed one level
// deep inside a tree listed whole); find's exit code on stderr.
const script = [
  'LC_ALL=C; export LC_ALL',
  'cd -- "$1" 2>/dev/null || { echo NOROOT >&2; exit 3; }',
  // find's -readable (an access() call) only where the owner's read bit does not answer, as in tree.ts's listScript.
  `expr='( -path ./${STORAGE_AREA} -o -name ${PARTIAL_DIR} ) -prune -printf R\\0400\\0400\\0400:0\\040%p\\0 -o -type f ! ( -uid '"$(id -u)"' -perm -u=r ) ! -readable -printf U\\040%s\\040%T@\\040%i:%C@\\040%p\\0 -o -type d -printf d\\040%m\\040%T@\\040%i:%C@\\040%p\\0 -o -printf %y\\040%s\\040%T@\\040%i:%C@\\040%p\\0'`,
  '{ find -files0-from "$2" -mindepth 1 -maxdepth 1 $expr; a=$?; find -files0-from "$3" -mindepth 1 $expr; b=$?; echo "FIND-EXIT $((a > b ? a : b))" >&2; } | sort -z -u -t " " -k 5 -S 16M',
].join('\n');

/** The journal's folders that are synced at all (an excluded folder, or one inside it, never is). */
export function changedFolders(changes: LocalChanges, excludes: string[]): ListedChanges {
  const matcher = createMatcher(excludes);
  const pruned = prunableDirs(excludes);
  const excluded = (rel: string) => {
    for (let p = rel; p; p = p.slice(0, Math.max(0, p.lastIndexOf('/')))) {
      if (pruned.includes(p) || matcher(p, true)) return true;
    }
    return false;
  };
  return {
    folders: [...new Set(changes.folders)].filter((f) => !excluded(f)).sort(),
    trees: [...new Set(changes.trees)].filter((f) => f && !excluded(f)).sort(),
  };
}

/** Lists the changed folders into `file` (sorted records, names behind "./"). */
export async function listChangedToFile(home: Endpoint, excludes: string[], ch: ListedChanges, file: string): Promise<ListingFile> {
  const hash = crypto.createHash('sha256').update(JSON.stringify([ch.folders, ch.trees, excludes]));
  if (!ch.folders.length && !ch.trees.length) {
    fs.writeFileSync(file, '', { mode: 0o600 });
    return { exists: true, file, digest: 'folders:' + hash.digest('hex'), unreadable: [] };
  }
  const [shallow, deep] = [`${file}.folders`, `${file}.trees`];
  const nul = (list: string[]) => list.map((f) => (f ? `./${f}\0` : '.\0')).join('');
  fs.writeFileSync(shallow, nul(ch.folders), { mode: 0o600 });
  fs.writeFileSync(deep, nul(ch.trees), { mode: 0o600 });
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o600);
  let r;
  try {
    r = await home.sh(script, [home.path, shallow, deep], undefined, fd);
  } finally {
    fs.closeSync(fd);
  }
  if (r.code === 3 && r.stderr.includes('NOROOT')) throw new TabulaError('storage-invalid', `The home folder ${home.path} does not exist.`);
  // find exits 1 for a folder it could not read, and for one gone since the event (its parent's
  // listing says so); the rest of its listing is good.
  const lines = r.stderr.split('\n').filter((l) => l && !l.startsWith('FIND-EXIT '));
  const code = r.code === 0 ? Number(/FIND-EXIT (\d+)/.exec(r.stderr)?.[1] ?? 1) : r.code;
  const unreadable = lines.map((l) => /^find: '\.\/(.*)': Permission denied$/.exec(l)?.[1]).filter((p): p is string => p !== undefined);
  const vanished = lines.filter((l) => /: No such file or directory$|: Not a directory$/.test(l));
  if (code !== 0 && (code !== 1 || unreadable.length + vanished.length !== lines.length)) {
    throw new TabulaError('internal', `Could not list ${home.display}: ${lines[0] ?? `exit ${code}`}`);
  }
  await hashFile(hash, file);
  fs.rmSync(shallow, { force: true });
  fs.rmSync(deep, { force: true });
  return { exists: true, file, digest: 'folders:' + hash.digest('hex'), unreadable };
}

/** A listing of no folder at all: the home is the archive's (the journal saw nothing). */
export function unchangedListing(digest: string, file: string): ListingFile {
  fs.writeFileSync(file, '', { mode: 0o600 });
  return { exists: true, file, digest, unreadable: [] };
}

const parentOf = (rel: string) => {
  const slash = rel.lastIndexOf('/');
  return slash < 0 ? '' : rel.slice(0, slash);
};

function underAny(p: string, dirs: Set<string>): boolean {
  if (!dirs.size) return false;
  for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) if (dirs.has(p.slice(0, i))) return true;
  return false;
}

/**
 * The home now: the archive's record of it (each entry with the home's own inode and change time),
 * where what the changed folders held is replaced by what they hold now. A folder gone (or now a
 * file or link) takes along what the archive had inside it. Both inputs in name order, and so the output.
 */
export async function* overlayBatches(archived: Batches<Entry>, listed: Batches<Listed>, ch: ListedChanges): AsyncGenerator<[string, Listed][]> {
  const folders = new Set(ch.folders);
  const trees = new Set(ch.trees);
  const gone = new Set<string>();
  const ca = new Cursor(archived, 'archive');
  const cl = new Cursor(listed, "home's listing");
  let out: [string, Listed][] = [];
  for (;;) {
    if (ca.empty) await ca.fill();
    if (cl.empty) await cl.fill();
    const [ha, hl] = [ca.head(), cl.head()];
    if (!ha && !hl) break;
    const name = ha && (!hl || compareNames(ha[0], hl[0]) < 0) ? ha[0] : hl![0];
    const a = ha && ha[0] === name ? (ca.advance(), ha[1]) : undefined;
    const l = hl && hl[0] === name ? (cl.advance(), hl[1]) : undefined;
    if (l !== undefined) out.push([name, l]);
    else if (a) {
      const replaced = folders.has(parentOf(name)) || underAny(name, trees);
      if (replaced) {
        if (a.type === 'd') gone.add(name);
      } else if (!underAny(name, gone)) out.push([name, { type: a.type, size: a.size, mtime: a.mtime, ...(a.stamp ? { stamp: a.stamp } : {}) }]);
    }
    if (a && l !== undefined && a.type === 'd' && (l === 'unreadable' || l.type !== 'd')) gone.add(name);
    if (out.length >= 256) {
      yield out;
      out = [];
    }
  }
  if (out.length) yield out;
}

/** For the listing filter: the changed folders' records name each entry behind "./". */
export const withoutDot = (rec: string) => {
  const s4 = nthSpace(rec, 4);
  return s4 >= 0 && rec.startsWith('./', s4 + 1) ? rec.slice(0, s4 + 1) + rec.slice(s4 + 3) : rec;
};

function nthSpace(s: string, n: number): number {
  let i = -1;
  for (let k = 0; k < n; k++) {
    i = s.indexOf(' ', i + 1);
    if (i < 0) return -1;
  }
  return i;
}
