// The archive: both sides as this laptop left them after its last successful sync, the third input
// of every decision (see plan.ts). Version 3 is a file of NUL-separated records sorted by name in byte
// order, the order of the listings, so that a sync reads it as a stream beside them (merge.ts) and
// writes the next one the same way; it is replaced atomically. Versions 1 and 2 (one JSON document)
// are read once and converted.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { TabulaError } from '../../common/errors';
import { fsyncDir } from '../atomic-file';
import { ARCHIVE_FILE, FORMAT, formatRecord, MAGIC, parseArchiveRecord, readHeader } from './archive-format';
import { compareNames, recordBatches } from './listing';
import { createRecordWriter } from './record-writer';
import type { Entry } from './tree';

export { adoptListedTime } from './archive-format';

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
    // Older versions' JSON, read once with zod: loaded only for it (`tabula sync` keeps to a small memory budget).
    const old = (await import('./archive-json')).loadJsonArchive(stateDir, storage);
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
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  const out = createRecordWriter(fd);
  out.write(`${MAGIC} ${FORMAT} ${roundedTimes ? 1 : 0} ${storage}\0`);
  let last: string | null = null;
  let closed = false;
  /** A record already in the archive's format (formatRecord), for `name`. */
  const addRecord = (name: string, rec: string) => {
    // The order is what makes it readable as a stream: a slip here would lose entries later.
    if (last !== null && compareNames(last, name) >= 0) throw new Error(`archive written out of order: ${JSON.stringify(last)} then ${JSON.stringify(name)}`);
    last = name;
    out.write(rec);
  };
  return {
    add: (name: string, e: Entry) => addRecord(name, formatRecord(name, e)),
    addRecord,
    commit() {
      out.flush();
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
