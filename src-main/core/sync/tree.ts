// Listing a tree: the home and the storage are listed by the same `find -printf` script (locally, or
// over ssh), NUL-separated so that every byte of a name survives, filtered by the same excludes.

export type EntryType = 'f' | 'd' | 'l';

export interface Entry {
  type: EntryType;
  /** A folder's: its permission bits (0o700 for a private one); 0 where not known (an archive of before). */
  size: number;
  /**
   * Nanoseconds since 1970, exactly as the file system keeps them (whole seconds × 10⁹ on a storage that
   * keeps only seconds). One integer from the listing through the archive to every comparison: a time
   * read back by a later listing is equal to the one recorded, never off by a rounding.
   */
  mtime: bigint;
  /**
   * Inode and change time ("ino:ctime", verbatim from find), compared only with this same side's own
   * record: an edit that puts size and time back (`touch -r`, `rsync -t`, some editors) still moves
   * the change time, and a file replaced by another gets a new inode. Unknown (absent) for a file this
   * laptop received, until the next listing of the home records it.
   */
  stamp?: string;
  /** In the archive only: the storage's inode and change time for this path, compared with the storage's listing. */
  remoteStamp?: string;
}

const NS = 1_000_000_000n;

/** find's `%T@` (`1796138765.7901979670`: seconds, a dot, 10 digits of which the 10th is always 0) → ns. */
export function parseFindTime(t: string): bigint {
  const dot = t.indexOf('.');
  if (dot < 0) return BigInt(t) * NS;
  // find prints tv_sec "." tv_nsec: before 1970 the seconds are negative and the fraction still counts
  // up from them (0.25 s before 1970 is "-1.7500000000").
  return BigInt(t.slice(0, dot)) * NS + BigInt((t.slice(dot + 1) + '000000000').slice(0, 9));
}

/** Whole seconds, rounded down (also before 1970), for comparing with a storage that keeps only seconds. */
export function wholeSeconds(ns: bigint): bigint {
  const s = ns / NS;
  return ns < 0n && s * NS !== ns ? s - 1n : s;
}

export const nsToDate = (ns: bigint) => new Date(Number(ns / 1_000_000n));

export type Tree = Map<string, Entry>;

export interface Listing {
  tree: Tree;
  /** False when the folder itself does not exist (an unmounted NAS, a wrong path). */
  exists: boolean;
  hasSentinel: boolean;
  /** Entries left out and why: special files, names that are not UTF-8, what this user may not read. */
  skipped: { path: string; why: string }[];
  /** Tabula's own names found here (its storage area and rsync's partial folders), never synced. */
  reserved?: string[];
}

export const PERMISSION_DENIED = 'permission denied';

export const SENTINEL = '.tabula-storage';
/** Tabula's own area on the storage (versions); never synced. */
export const STORAGE_AREA = '.tabula';
export const PARTIAL_DIR = '.tabula-partial';

/** A POSIX sh script: $1 the folder, then folders to prune (relative). Prints NOROOT on stderr when $1 is missing. */
export const listScript = [
  // find's messages and its %T@ decimal point follow the locale: parse only what the C locale prints.
  'LC_ALL=C; export LC_ALL',
  'root=$1; shift',
  'cd -- "$root" 2>/dev/null || { echo NOROOT >&2; exit 3; }',
  'prune=""',
  'for p in "$@"; do prune="$prune -path ./$p -prune -o"; done',
  // $prune is split on purpose; the names come from config and never contain spaces we did not expect
  // (they are matched literally by find -path).
  // Tabula's own names are printed as R (the home must say it leaves them out); files this user may
  // not read as U (rsync could not send them: one skipped item, not a failed run).
  // A file of one's own with its owner's read bit is readable (POSIX ACLs keep the owner's entry in
  // those bits): find's -readable, an access() call, is then skipped for nearly every file of a home
  // (a tenth of an idle run's processor time at 100,000 files).
  'uid=$(id -u)',
  `exec find . -mindepth 1 $prune \\( -path ./${STORAGE_AREA} -o -name ${PARTIAL_DIR} \\) -prune -printf 'R 0 0 0:0 %P\\0' -o -type f ! \\( -uid "$uid" -perm -u=r \\) ! -readable -printf 'U %s %T@ %i:%C@ %P\\0' -o -type d -printf 'd %m %T@ %i:%C@ %P\\0' -o -printf '%y %s %T@ %i:%C@ %P\\0'`,
].join('\n');

/** Records "<inode>:<ctime> ./<name>\0" (find -printf '%i:%C@ %p\0' on ./names) → name → stamp. */
export function parseStamps(out: Buffer): Map<string, string> {
  const stamps = new Map<string, string>();
  for (const rec of out.toString('utf8').split('\0')) {
    const sp = rec.indexOf(' ');
    if (sp > 0 && rec.startsWith('./', sp + 1)) stamps.set(rec.slice(sp + 3), rec.slice(0, sp));
  }
  return stamps;
}

/** Adds items one by one: `to.push(...items)` puts every item on the stack, and a million names overflow it. */
export function append<T>(to: T[], items: Iterable<T>): void {
  for (const x of items) to.push(x);
}
