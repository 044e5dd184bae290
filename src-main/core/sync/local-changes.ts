// The home's listing when the change journal says which folders changed: those folders are listed
// (by the same find -printf records as the full listing, through the same parser and excludes), and
// everything else is the home as the archive recorded it after the last sync. An idle laptop's run
// then stats a handful of folders instead of the whole home.
import crypto from 'node:crypto';
import type { LoadedArchive } from './archive';
import type { LocalChanges } from './change-journal';
import type { Endpoint } from './endpoint';
import { createMatcher, prunableDirs } from './excludes';
import { parseListing, PARTIAL_DIR, PERMISSION_DENIED, STORAGE_AREA, type Listing, type Tree } from './tree';
import { TabulaError } from '../../common/errors';

/** The same shape as the full listing's (see engine.ts RawListing). */
export interface ChangedListing {
  exists: boolean;
  digest: string;
  parse(): Listing;
}

// $1 the home, $2 the depth ("1" or "" for all), then the folders as ./relative paths. Prints the
// records of listScript (tree.ts) with the name relative to the home, behind "./".
const script = [
  'LC_ALL=C; export LC_ALL',
  'cd -- "$1" 2>/dev/null || { echo NOROOT >&2; exit 3; }',
  'depth=$2; shift 2',
  `exec find "$@" -mindepth 1 \${depth:+-maxdepth "$depth"} \\( -path ./${STORAGE_AREA} -o -name ${PARTIAL_DIR} \\) -prune -printf 'R 0 0 0:0 %p\\0' -o -type f ! -readable -printf 'U %s %T@ %i:%C@ %p\\0' -o -printf '%y %s %T@ %i:%C@ %p\\0'`,
].join('\n');

/**
 * `full` lists the whole home (the journal cannot vouch for it: no archive yet, or one of an older kind).
 * `quietDigest`: the home's digest after the last run that changed nothing; with no change since, the
 * home is that same home, and the run can end without reading the archive.
 */
export async function listChangedFolders(
  home: Endpoint,
  excludes: string[],
  changes: LocalChanges,
  archive: () => LoadedArchive,
  quietDigest: string | null,
  full: () => Promise<ChangedListing>,
): Promise<ChangedListing> {
  const matcher = createMatcher(excludes);
  const pruned = prunableDirs(excludes);
  // A folder that is excluded, or inside one, is never listed (the full listing prunes it too).
  const excluded = (rel: string) => {
    for (let p = rel; p; p = p.slice(0, Math.max(0, p.lastIndexOf('/')))) {
      if (pruned.includes(p) || matcher(p, true)) return true;
    }
    return false;
  };
  const folders = [...new Set(changes.folders)].filter((f) => !excluded(f)).sort();
  const trees = [...new Set(changes.trees)].filter((f) => f && !excluded(f)).sort();
  if (!folders.length && !trees.length && quietDigest) {
    return { exists: true, digest: quietDigest, parse: () => ({ tree: localView(usable(archive()).tree), exists: true, hasSentinel: false, skipped: [] }) };
  }
  const a = archive();
  if (a.first || a.roundedTimes) return full();

  const run = async (depth: string, list: string[]) => {
    if (!list.length) return { out: '', unreadable: [] as string[] };
    const r = await home.sh(script, [home.path, depth, ...list.map((f) => (f ? `./${f}` : '.'))]);
    if (r.code === 3 && r.stderr.includes('NOROOT')) throw new TabulaError('storage-invalid', `The home folder ${home.path} does not exist.`);
    // find exits 1 for a folder it could not read, and for one gone since the event (its parent's
    // listing says so); the rest of its listing is good.
    const lines = r.stderr.split('\n').filter(Boolean);
    const unreadable = lines.map((l) => /^find: '\.\/(.*)': Permission denied$/.exec(l)?.[1]).filter((p): p is string => p !== undefined);
    const vanished = lines.filter((l) => /: No such file or directory$|: Not a directory$/.test(l));
    if (r.code !== 0 && (r.code !== 1 || unreadable.length + vanished.length !== lines.length)) {
      throw new TabulaError('internal', `Could not list ${home.display}: ${lines[0] ?? `exit ${r.code}`}`);
    }
    // "<type> <size> <mtime> <stamp> ./<name>\0" → the full listing's "… <name>\0".
    return { out: r.stdout.toString('utf8').replace(/(^|\0)(\S+ \S+ \S+ \S+ )\.\//g, '$1$2'), unreadable };
  };
  const [shallow, deep] = await Promise.all([run('1', folders), run('', trees)]);
  const digest = 'folders:' + crypto.createHash('sha256').update(JSON.stringify([folders, trees, excludes])).update(shallow.out).update(deep.out).digest('hex');

  return {
    exists: true,
    digest,
    parse() {
      const tree = localView(a.tree);
      // What the changed folders held is what they hold now: their entries (and everything inside a
      // folder that appeared whole) come from the listing, not the archive.
      const listed = new Set(folders);
      const whole = new Set(trees);
      const was = new Set<string>();
      for (const [p, e] of tree) {
        if (listed.has(parentOf(p)) || underAny(p, whole)) {
          if (e.type === 'd') was.add(p);
          tree.delete(p);
        }
      }
      // Parents before children (byte order), as one full listing would print them.
      const listing = parseListing(Buffer.from(shallow.out + deep.out), matcher, tree);
      // A folder gone (or now a file or link) takes along what the archive had inside it.
      const gone = new Set([...was].filter((p) => tree.get(p)?.type !== 'd'));
      if (gone.size) for (const p of [...tree.keys()]) if (underAny(p, gone)) tree.delete(p);
      const unreadable = [...shallow.unreadable, ...deep.unreadable].map((p) => ({ path: p, why: PERMISSION_DENIED }));
      return { ...listing, tree, exists: true, skipped: [...listing.skipped, ...unreadable] };
    },
  };
}

/**
 * The archive read only once the storage turned out to have changed (the idle case never reads it)
 * and found missing or damaged: the home cannot be told from it. The run stops; the next lists the
 * home in full (the journal's failed()).
 */
function usable(a: LoadedArchive): LoadedArchive {
  if (a.first || a.roundedTimes) throw new TabulaError('internal', 'The sync archive was missing or damaged; the next sync lists the whole home.', { retryable: true });
  return a;
}

/** The home as the archive recorded it: each entry with the home's own inode and change time. */
function localView(archived: Tree): Tree {
  const t: Tree = new Map();
  for (const [p, e] of archived) t.set(p, { type: e.type, size: e.size, mtime: e.mtime, ...(e.stamp ? { stamp: e.stamp } : {}) });
  return t;
}

const parentOf = (rel: string) => {
  const slash = rel.lastIndexOf('/');
  return slash < 0 ? '' : rel.slice(0, slash);
};

function underAny(p: string, dirs: Set<string>): boolean {
  for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) if (dirs.has(p.slice(0, i))) return true;
  return false;
}
