// Listing a tree: the home and the storage are listed by the same `find -printf` script (locally, or
// over ssh), NUL-separated so that every byte of a name survives, filtered by the same excludes.
import type { Matcher } from './excludes';

export type EntryType = 'f' | 'd' | 'l';

export interface Entry {
  type: EntryType;
  size: number;
  /** Whole seconds: some storage keeps no finer times, and rsync -t carries seconds everywhere. */
  mtime: number;
}

export type Tree = Map<string, Entry>;

export interface Listing {
  tree: Tree;
  /** False when the folder itself does not exist (an unmounted NAS, a wrong path). */
  exists: boolean;
  hasSentinel: boolean;
  /** Entries left out and why: special files, names that are not UTF-8. */
  skipped: { path: string; why: string }[];
}

export const SENTINEL = '.tabula-storage';
/** Tabula's own area on the storage (versions); never synced. */
export const STORAGE_AREA = '.tabula';
export const PARTIAL_DIR = '.tabula-partial';

/** A POSIX sh script: $1 the folder, then folders to prune (relative). Prints NOROOT on stderr when $1 is missing. */
export const listScript = [
  'root=$1; shift',
  'cd -- "$root" 2>/dev/null || { echo NOROOT >&2; exit 3; }',
  'prune=""',
  'for p in "$@"; do prune="$prune -path ./$p -prune -o"; done',
  // $prune is split on purpose; the names come from config and never contain spaces we did not expect
  // (they are matched literally by find -path).
  `exec find . -mindepth 1 $prune \\( -path ./${STORAGE_AREA} -o -name ${PARTIAL_DIR} \\) -prune -o -printf '%y %s %T@ %P\\0'`,
].join('\n');

export function parseListing(out: Buffer, matcher: Matcher): Omit<Listing, 'exists'> {
  const tree: Tree = new Map();
  const skipped: Listing['skipped'] = [];
  let hasSentinel = false;
  let start = 0;
  while (start < out.length) {
    let end = out.indexOf(0, start);
    if (end < 0) end = out.length;
    const record = out.subarray(start, end);
    start = end + 1;
    // "<type> <size> <mtime> <name>"
    let cut = 0;
    for (let spaces = 0; spaces < 3 && cut < record.length; cut++) if (record[cut] === 0x20) spaces++;
    const [type, size, mtime] = record.subarray(0, cut - 1).toString('latin1').split(' ');
    const nameBytes = record.subarray(cut);
    const name = nameBytes.toString('utf8');
    if (!name) continue;
    if (name === SENTINEL) {
      hasSentinel = true;
      continue;
    }
    if (!Buffer.from(name, 'utf8').equals(nameBytes)) {
      skipped.push({ path: name, why: 'the name is not valid UTF-8' });
      continue;
    }
    if (type !== 'f' && type !== 'd' && type !== 'l') {
      skipped.push({ path: name, why: 'special file (device, socket or pipe)' });
      continue;
    }
    if (matcher(name, type === 'd')) continue;
    // Children of an excluded folder are excluded too.
    const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : null;
    if (parent !== null && !tree.has(parent)) continue;
    tree.set(name, { type, size: type === 'd' ? 0 : Number(size), mtime: Math.floor(Number(mtime)) });
  }
  return { tree, hasSentinel, skipped };
}
