// The archive: both sides as this laptop left them after its last successful sync, the third input
// of every decision (see plan.ts). Kept in the state folder, written atomically.
import path from 'node:path';
import { z } from 'zod';
import { createJsonStore } from '../atomic-file';
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

export function archiveStore(stateDir: string) {
  return createJsonStore<ArchiveFile | null>(path.join(stateDir, 'sync-archive.json'), archiveSchema.nullable(), () => null);
}

export interface LoadedArchive {
  tree: Tree;
  first: boolean;
  problem: string | null;
  /** Written by an older Tabula with times rounded to about a microsecond: see {@link adoptListedTimes}. */
  roundedTimes: boolean;
}

export function loadArchive(stateDir: string, storage: string): LoadedArchive {
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
    if (a.type === 'd') continue;
    for (const t of listings) {
      const e = t.get(p);
      const diff = e ? e.mtime - a.mtime : 0n;
      if (e && e.type === a.type && e.size === a.size && diff > -2000n && diff < 2000n) {
        archive.set(p, { ...a, mtime: e.mtime });
        break;
      }
    }
  }
}

export function saveArchive(stateDir: string, storage: string, tree: Tree) {
  const entries: ArchiveFile['entries'] = [];
  for (const [p, e] of tree) {
    const t = e.mtime.toString();
    entries.push(e.stamp || e.remoteStamp ? [p, e.type, e.size, t, e.stamp ?? '', e.remoteStamp ?? ''] : [p, e.type, e.size, t]);
  }
  archiveStore(stateDir).save({ version: 2, storage, entries });
}

