// The archive: both sides as this laptop left them after its last successful sync, the third input
// of every decision (see plan.ts). Version 3 is a file of NUL-separated records sorted by name in byte
// order, the order of the listings, so that a sync reads it as a stream beside them (merge.ts) and
// writes the next one the same way; it is replaced atomically. Versions 1 and 2 (one JSON document)
// are read once and converted.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { TabulaError } from '../../common/errors';
import { createJsonStore, fsyncDir } from '../atomic-file';
import { compareNames, recordBatches } from './listing';
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

function loadJsonArchive(stateDir: string, storage: string): LoadedArchive {
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

/** One entry of a rounded archive against what the listings show now (see {@link adoptListedTimes}). */
export function adoptListedTime(a: Entry, ...listed: (Entry | undefined)[]): Entry {
  if (a.type === 'd') return a;
  for (const e of listed) {
    const diff = e ? e.mtime - a.mtime : 0n;
    if (e && e.type === a.type && e.size === a.size && diff > -2000n && diff < 2000n) return { ...a, mtime: e.mtime };
  }
  return a;
}

export const ARCHIVE_FILE = 'sync-archive';
const MAGIC = 'tabula-archive';
const FORMAT = 3;
const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;

/** "<type> <size> <mtime ns> <stamp|-> <remote stamp|-> <name>" */
function formatRecord(name: string, e: Entry): string {
  return `${e.type} ${e.size} ${e.mtime} ${e.stamp || '-'} ${e.remoteStamp || '-'} ${name}\0`;
}

// Checked by hand, cheaply: this runs for every entry of every sync.
export function parseArchiveRecord(rec: string): [string, Entry] | null {
  const s1 = rec.indexOf(' ');
  const s2 = rec.indexOf(' ', s1 + 1);
  const s3 = rec.indexOf(' ', s2 + 1);
  const s4 = rec.indexOf(' ', s3 + 1);
  const s5 = rec.indexOf(' ', s4 + 1);
  if (s1 !== 1 || s2 < 0 || s3 < 0 || s4 < 0 || s5 < 0 || s5 + 1 >= rec.length) return null;
  const type = rec[0];
  if (type !== 'f' && type !== 'd' && type !== 'l') return null;
  const size = Number(rec.slice(2, s2));
  if (s2 === 2 || !Number.isSafeInteger(size) || size < 0 || s3 === s2 + 1 || s4 === s3 + 1 || s5 === s4 + 1 || s5 - s4 > 81 || s4 - s3 > 81) return null;
  let mtime: bigint;
  try {
    mtime = BigInt(rec.slice(s2 + 1, s3));
  } catch {
    return null;
  }
  const e: Entry = { type, size, mtime };
  const stamp = rec.slice(s3 + 1, s4);
  const remoteStamp = rec.slice(s4 + 1, s5);
  if (stamp !== '-') e.stamp = stamp;
  if (remoteStamp !== '-') e.remoteStamp = remoteStamp;
  return [rec.slice(s5 + 1), e];
}

export interface ArchiveHandle {
  /** No archive for this storage: a first sync (nothing is deleted). */
  first: boolean;
  /** Converted from version 1: times rounded to about a microsecond (see {@link adoptListedTimes}). */
  roundedTimes: boolean;
  /** The version 3 file, or null for a first sync. */
  file: string | null;
  /** Why an archive was set aside (damaged), for the log. */
  problem: string | null;
}

/** "tabula-archive 3 <rounded 0|1> <storage>" */
function readHeader(file: string): { rounded: boolean; storage: string } | null {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(4096);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const end = buf.subarray(0, n).indexOf(0);
    if (end < 0) return null;
    const m = /^tabula-archive (\d+) ([01]) (.*)$/s.exec(buf.toString('utf8', 0, end));
    return m && Number(m[1]) === FORMAT ? { rounded: m[2] === '1', storage: m[3]! } : null;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Opens the archive made against this storage, converting an older one (read once, whole) first. The
 * whole file is checked before a sync trusts it (every record well formed, names strictly in order):
 * a damaged archive is set aside and the run is a first sync, which deletes nothing.
 */
export async function openArchive(stateDir: string, storage: string): Promise<ArchiveHandle> {
  const file = path.join(stateDir, ARCHIVE_FILE);
  const none = (problem: string | null = null): ArchiveHandle => ({ first: true, roundedTimes: false, file: null, problem });
  if (!fs.existsSync(file)) {
    if (!fs.existsSync(path.join(stateDir, 'sync-archive.json'))) return none();
    const old = loadJsonArchive(stateDir, storage);
    if (old.first) return none(old.problem);
    const w = createArchiveWriter(stateDir, storage, old.roundedTimes);
    for (const name of [...old.tree.keys()].sort(compareNames)) w.add(name, old.tree.get(name)!);
    w.commit();
    fs.rmSync(path.join(stateDir, 'sync-archive.json'), { force: true });
  }
  let header: ReturnType<typeof readHeader>;
  try {
    header = readHeader(file);
  } catch {
    header = null;
  }
  if (header && header.storage !== storage) return none(); // made against other storage: says nothing about this one
  if (!header) return none(setAside(file, 'its header is not one this version of Tabula reads'));
  return { first: false, roundedTimes: header!.rounded, file, problem: null };
}

/** A damaged archive is kept aside; the next sync is a first sync, which deletes nothing. */
function setAside(file: string, why: string): string {
  const aside = `${file}.damaged-${Date.now()}`;
  fs.renameSync(file, aside);
  return `The sync archive was damaged (${why}); it was kept as ${aside} and the next sync deletes nothing.`;
}

const archiveBatches = recordBatches;

/** The archive's entries in order (after its header). */
export async function* archiveEntries(h: ArchiveHandle): AsyncGenerator<[string, Entry][]> {
  if (!h.file) return;
  let header = true;
  let last: string | null = null;
  for await (const batch of archiveBatches(h.file)) {
    const out: [string, Entry][] = [];
    for (const rec of batch) {
      if (header) {
        header = false;
        continue;
      }
      const r = parseArchiveRecord(rec);
      // Found while merging (the whole file is not read twice to check it first): this run stops,
      // changing nothing more, and the next one starts over without it.
      if (!r || (last !== null && compareNames(last, r[0]) >= 0)) {
        throw new TabulaError('internal', setAside(h.file, r ? 'its names are out of order' : 'a record is not well formed'), { retryable: true });
      }
      last = r[0];
      out.push(r);
    }
    yield out;
  }
}

/** Writes the next archive in name order, to a temporary file replaced atomically on commit. */
export function createArchiveWriter(stateDir: string, storage: string, roundedTimes = false) {
  fs.mkdirSync(stateDir, { recursive: true });
  const file = path.join(stateDir, ARCHIVE_FILE);
  const tmp = `${file}.tmp-${crypto.randomBytes(6).toString('hex')}`;
  const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  let pending = `${MAGIC} ${FORMAT} ${roundedTimes ? 1 : 0} ${storage}\0`;
  let last: string | null = null;
  let closed = false;
  const flush = () => {
    fs.writeSync(fd, pending);
    pending = '';
  };
  return {
    add(name: string, e: Entry) {
      // The order is what makes it readable as a stream: a slip here would lose entries later.
      if (last !== null && compareNames(last, name) >= 0) throw new Error(`archive written out of order: ${JSON.stringify(last)} then ${JSON.stringify(name)}`);
      last = name;
      pending += formatRecord(name, e);
      if (pending.length > 1 << 16) flush();
    },
    commit() {
      flush();
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      closed = true;
      fs.renameSync(tmp, file);
      fsyncDir(stateDir);
    },
    abort() {
      if (!closed) fs.closeSync(fd);
      closed = true;
      fs.rmSync(tmp, { force: true });
    },
  };
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
