// The archive of versions 1 and 2 (one JSON document), read once and converted to version 3 (archive.ts),
// and the whole archive in memory for small jobs and tests. Apart from archive.ts because it needs zod,
// which a sync loads only when it meets such an archive.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { createJsonStore } from '../atomic-file';
import { adoptListedTime, ARCHIVE_FILE, parseArchiveRecord, readHeader } from './archive-format';
import type { Entry, Tree } from './tree';

// Entries are checked by hand: a schema walk over 100k tuples costs more than the whole listing.
// Version 2 keeps each time as a string of whole nanoseconds (exact); version 1 kept float seconds.
// The fifth and sixth fields, when present, are the inode and change time of the home's copy and of the
// storage's (see Entry.stamp; '' when not known yet).
type ArchiveEntry = [string, Entry['type'], number, string | number] | [string, Entry['type'], number, string | number, string, string];
const isEntry = (e: unknown): e is ArchiveEntry =>
  Array.isArray(e) &&
  (e.length === 4 || (e.length === 6 && typeof e[4] === 'string' && typeof e[5] === 'string')) &&
  typeof e[0] === 'string' &&
  (e[1] === 'f' || e[1] === 'd' || e[1] === 'l') &&
  typeof e[2] === 'number' &&
  (typeof e[3] === 'number' || (typeof e[3] === 'string' && /^-?\d{1,30}$/.test(e[3])));
const archiveSchema = z.object({
  version: z.union([z.literal(1), z.literal(2)]),
  storage: z.string(),
  entries: z.custom<ArchiveEntry[]>((v) => Array.isArray(v) && v.every(isEntry), 'an archive entry is damaged'),
});
type ArchiveFile = z.infer<typeof archiveSchema>;

// The archive grows with the home (about 150 bytes a file): the 1 MiB cap of the other state files
// took a 100,000-file archive for a damaged one, and every run for a first sync.
const ARCHIVE_MAX_BYTES = 1 << 30;

export function archiveStore(stateDir: string) {
  return createJsonStore<ArchiveFile | null>(path.join(stateDir, 'sync-archive.json'), archiveSchema.nullable(), () => null, { maxBytes: ARCHIVE_MAX_BYTES });
}

export interface LoadedArchive {
  tree: Tree;
  first: boolean;
  problem: string | null;
  /** Written by an older Tabula with times rounded to about a microsecond: see {@link adoptListedTimes}. */
  roundedTimes: boolean;
}

export function loadJsonArchive(stateDir: string, storage: string): LoadedArchive {
  const { value, problem } = archiveStore(stateDir).load();
  // An archive made against other storage says nothing about this one: start as a first sync (no deletions).
  if (!value || value.storage !== storage) return { tree: new Map(), first: true, problem, roundedTimes: false };
  const ns = (t: string | number) => (typeof t === 'string' ? BigInt(t) : BigInt(Math.round(t * 1e6)) * 1000n);
  const entry = ([, type, size, mtime, stamp, remoteStamp]: ArchiveEntry): Entry => ({ type, size, mtime: ns(mtime), ...(stamp ? { stamp } : {}), ...(remoteStamp ? { remoteStamp } : {}) });
  return { tree: new Map(value.entries.map((e) => [e[0], entry(e)])), first: false, problem, roundedTimes: value.version === 1 };
}

/**
 * An archive of float seconds (version 1) could not hold a time to the nanosecond. Where a listing
 * shows the same entry within 2 µs, that listing's exact time is what the archive meant; without this
 * step the first run after an update would take every file for an edit.
 */
export function adoptListedTimes(archive: Tree, ...listings: Tree[]) {
  for (const [p, a] of archive) {
    const adopted = adoptListedTime(a, ...listings.map((t) => t.get(p)));
    if (adopted !== a) archive.set(p, adopted);
  }
}

/** The whole archive in memory: for small jobs (the window's change count, tests), never for a sync. */
export function loadArchive(stateDir: string, storage: string): LoadedArchive {
  const file = path.join(stateDir, ARCHIVE_FILE);
  if (!fs.existsSync(file)) return loadJsonArchive(stateDir, storage);
  const header = readHeader(file);
  if (!header || header.storage !== storage) return { tree: new Map(), first: true, problem: header ? null : 'damaged', roundedTimes: false };
  const tree: Tree = new Map();
  const records = fs.readFileSync(file, 'utf8').split('\0');
  for (const rec of records.slice(1)) {
    const r = rec ? parseArchiveRecord(rec) : null;
    if (r) tree.set(r[0], r[1]);
  }
  return { tree, first: false, problem: null, roundedTimes: header.rounded };
}
