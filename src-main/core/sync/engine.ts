// One bidirectional sync run between the home and the storage, with the safety contract of Unison and
// rclone bisync: nothing a person made is silently lost, an empty or unmounted side never wipes the
// other, overwritten and deleted files go to a versioned area, and an interrupted run leaves both sides
// and the archive consistent so that the next run finishes the job.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SyncRunSummary } from '../../common/contract/sync';
import { TabulaError } from '../../common/errors';
import { writeFileAtomic } from '../atomic-file';
import { displayPath } from '../paths';
import { CHECKSUM_BYTES_PER_SECOND, IO_TIMEOUT_SECONDS, parseableOutput, runRsync, type RsyncResult, type RsyncRun } from '../rsync';
import { describeRsyncFailure, describeStorageScriptFailure } from '../rsync-errors';
import { adoptListedTime, archiveEntries, createArchiveWriter, openArchive, type ArchiveHandle } from './archive';
import { formatRecord } from './archive-format';
import { freeConflictName, moveNoClobber } from './conflicts';
import type { LocalChanges } from './change-journal';
import type { Endpoint } from './endpoint';
import { compareNames, createListingFilter, listHomeToFile, listToFile, readListing, recordBatches, SPECIAL_FILE, type ListingFile, type ListingNotes } from './listing';
import { changedFolders, listChangedToFile, overlayBatches, unchangedListing, withoutDot, type ListedChanges } from './local-changes';
import { acquireLock } from './local-lock';
import { mergeSorted, type Listed } from './merge';
import { createPathList, mergeRecords, readRecords, type PathList, type PathRecord } from './path-list';
import { createRecordWriter } from './record-writer';
import { CONFLICT_MARK, conflictPrefix, createPlanner, keepSide, sameEntry, type PlannedConflict } from './plan';
import { MAX_LINES as ORIGIN_LINES, readOrigins, recordPushed, type OriginLookup } from './origin-log';
import { writeSentinel } from './sentinel';
import { acquireStorageLock, readGeneration, readGenerationState, writeGenerationState, type StorageLock } from './storage-lock';
import { nsToDate, PARTIAL_DIR, PERMISSION_DENIED, SENTINEL, STORAGE_AREA, type Entry, type Listing } from './tree';

// Kept for the callers of before the split (the sync service, tests).
export type { LoadedArchive } from './archive-json';
export type { ConflictRecord } from './conflicts';

export interface SyncProgress {
  phase: 'listing' | 'comparing' | 'pulling' | 'pushing';
  percent: number;
  etaSeconds: number | null;
  bytesDone: number;
  filesDone: number;
  filesTotal: number | null;
  currentFile: string | null;
}

export interface SyncOptions {
  home: Endpoint;
  storage: Endpoint;
  /** Patterns relative to the home (rsync style); applied to both sides. */
  excludes: string[];
  stateDir: string;
  host: string;
  dryRun?: boolean;
  force?: boolean;
  /** Refuse when one side would delete more than this share of the archived files (default 0.5). */
  maxDeleteShare?: number;
  bandwidthLimitKBps?: number;
  versionsRetentionDays?: number;
  now?: () => Date;
  onProgress?: (p: SyncProgress) => void;
  /** Receives a function that cancels the run (kills rsync and ssh). */
  onCancelable?: (cancel: () => void) => void;
  /** Told (once) when another laptop holds the storage and this run waits for it. */
  onWaiting?: (reason: string) => void;
  /** How long to wait for another laptop's run on the same storage (default 120 s). */
  lockWaitSeconds?: number;
  /** List the storage in full even when its generation says nothing changed (default: once a day). */
  verify?: boolean;
  verifyIntervalHours?: number;
  /**
   * The folders of the home that changed since the last sync, from the change journal (the agent's);
   * absent or null: list the whole home. Ignored when a verification is due: then both sides are
   * listed in full.
   */
  localChanges?: LocalChanges | null;
  /** Names given to one rsync run (default {@link RSYNC_BATCH}); tests make it small. */
  rsyncBatch?: number;
  /** A batch's list of names this long or longer is read by rsync on the storage (default {@link NAMES_ON_STORAGE_BYTES}); tests make it small. */
  namesOnStorageBytes?: number;
  /** rsync's I/O timeout: how long the other side may stay silent before the run stops (default {@link IO_TIMEOUT_SECONDS}). */
  ioTimeoutSeconds?: number;
}

/**
 * What a run did. Files (and links) each way by name are the first {@link SUMMARY_NAMES} of each in name
 * order; `counts` says how many in all: a first sync of a million files does not hold a million names.
 */
export type SyncSummary = SyncRunSummary;

/**
 * Names per rsync run. Given a list with --files-from, rsync builds and holds all of it before it sends
 * anything (86 MiB and 36 s for a million names); 50,000 are ~5 MiB. Each run past the first costs
 * one ssh session on the shared connection.
 */
export const RSYNC_BATCH = 50_000;
/** A batch's list of names at least this long goes to the storage for rsync to read there (see filesFrom). */
export const NAMES_ON_STORAGE_BYTES = 64 * 1024;

/** How often at most a transfer tells its progress by file (its progress lines come every 0.1 s, as rsync's output is read). */
const PROGRESS_MS = 100;

/** How many names of each kind a summary keeps (the window and the CLI show a few; the counts are whole). */
export const SUMMARY_NAMES = 1000;

const nothingDone = (dryRun: boolean, skipped: Listing['skipped']): SyncSummary => ({
  dryRun,
  firstSync: false,
  pulled: [],
  pushed: [],
  deletedLocal: [],
  deletedRemote: [],
  counts: { pulled: 0, pushed: 0, deletedLocal: 0, deletedRemote: 0 },
  conflicts: [],
  skipped,
  bytesTransferred: 0,
});

/**
 * Changes in the home the storage does not have yet: files new or changed since the archive, and files
 * the archive has that the home no longer does. Read as streams, like a sync (the agent asks this
 * while the storage is out of reach: a million-file home must not cost it a million entries). With the
 * change journal's folders, only those are listed and the rest of the home is the archive's record.
 */
export async function countLocalChanges(home: Endpoint, excludes: string[], stateDir: string, storage: string, localChanges: LocalChanges | null = null): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-count-'));
  try {
    const archive = await openArchive(stateDir, storage);
    const changes = localChanges && !archive.first && !archive.roundedTimes ? changedFolders(localChanges, excludes) : null;
    const file = path.join(dir, 'home');
    const listed = changes ? await listChangedToFile(home, excludes, changes, file) : await listToFile(home, excludes, file);
    const { parse } = createListingFilter(excludes);
    const homeSide = !listed.file ? emptyBatches() : changes ? overlayBatches(archiveEntries(archive), listedBatches(listed.file, (rec) => parse(withoutDot(rec))), changes) : listedBatches(listed.file, parse);
    let n = 0;
    await mergeSorted(archiveEntries(archive), homeSide, emptyBatches(), (_p, a, l0) => {
      const l = l0 === 'unreadable' ? undefined : l0;
      if (l ? l.type !== 'd' && !sameEntry(l, a, 'exact') : a && a.type !== 'd') n++;
    });
    return n;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One side listed in full, in memory: for small jobs (the window's change count, tests), never for a sync. */
export async function listEndpoint(ep: Endpoint, excludes: string[]): Promise<Listing> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-list-'));
  try {
    return await readListing(await listToFile(ep, excludes, path.join(dir, 'listing')), excludes);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Digests of both listings right after a sync that changed nothing. When the next run finds the same
 * two listings, nothing has changed anywhere: it is done without parsing 100k entries or reading the archive.
 */
const quietFile = (stateDir: string) => path.join(stateDir, 'sync-quiet.json');
function readQuiet(stateDir: string, storage: string): { local: string; localRaw: string | null; remote: string; skipped: Listing['skipped'] } | null {
  try {
    const q = JSON.parse(fs.readFileSync(quietFile(stateDir), 'utf8')) as { storage?: string; local?: string; localRaw?: unknown; remote?: string; skipped?: unknown };
    // What was skipped stays skipped while nothing changes: it is said on every run, not only the first.
    const skipped = Array.isArray(q.skipped) ? q.skipped.filter((x): x is Listing['skipped'][number] => typeof x?.path === 'string' && typeof x?.why === 'string') : [];
    return q.storage === storage && q.local && q.remote ? { local: q.local, localRaw: typeof q.localRaw === 'string' ? q.localRaw : null, remote: q.remote, skipped } : null;
  } catch {
    return null;
  }
}

// Versions folders are named per run: time to the millisecond and the laptop, so two runs (two
// laptops, or two runs in one second) never share one and overwrite each other's saved copies.
const stampOf = (d: Date, host: string) => `${d.toISOString().replace(/[-:]/g, '')}-${host.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
// rsync skips --files-from lines that start with ';' or '#' (comments): a leading ./ keeps every name.

/**
 * What arrives from the storage never runs with another user's or group's rights: whoever can write
 * the storage could otherwise plant a setuid program in this home.
 */
const NO_SET_ID = ['--chmod=ug-s'];

/** The paths not inside another one of the list: removing a folder removes what it holds. */
export function topmost(paths: string[]): string[] {
  const set = new Set(paths);
  return [...set].filter((p) => {
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) if (set.has(p.slice(0, i))) return false;
    return true;
  });
}

const exists = (p: string) => {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

export async function runSync(o: SyncOptions): Promise<SyncSummary> {
  try {
    return await syncOnce(o);
  } catch (err) {
    // The kept ssh connection may carry the storage's hung session (a stopped rsync holds its channel
    // open for ever): the next run opens a fresh connection instead (~0.3 s once).
    if (err instanceof TabulaError && err.code === 'storage-unreachable') await o.storage.close();
    throw err;
  }
}

async function syncOnce(o: SyncOptions): Promise<SyncSummary> {
  const t0 = performance.now();
  const trace = process.env.TABULA_SYNC_TRACE ? (what: string) => (process.env.TABULA_SYNC_TRACE === "gc" && (globalThis as { gc?: () => void }).gc?.(), console.error(`[sync] ${what} at ${(performance.now() - t0).toFixed(0)} ms, ${memoryNow()}`)) : () => {};
  const now = o.now ?? (() => new Date());
  const release = acquireLock(o.stateDir);
  let storageLock: StorageLock | null = null;
  let current: RsyncRun | null = null;
  let cancelled = false;
  o.onCancelable?.(() => {
    cancelled = true;
    current?.cancel();
  });
  const checkCancelled = () => {
    const lost = storageLock?.lost();
    if (lost) throw new TabulaError('already-running', lost, { retryable: true });
    if (cancelled) throw new TabulaError('cancelled', 'The sync was stopped before it finished. What was copied is kept; the next sync continues from there.', { retryable: true });
  };
  // The listings are spooled here, sorted; never held in memory.
  const spool = path.join(o.stateDir, 'listings');
  fs.rmSync(spool, { recursive: true, force: true, maxRetries: 3 });
  fs.mkdirSync(spool, { recursive: true, mode: 0o700 });
  const homeFile = path.join(spool, 'home');
  const storageFile = path.join(spool, 'storage');
  // Files the run holds open in the spool, closed however it ends.
  const cleanups: (() => void)[] = [];
  // The home's listing (find, then sort) writes in the spool while the storage is asked: a run that
  // fails early (the storage unreachable) waits for it before the spool goes, so that nothing of this
  // run writes on after it ended, and its own error is what it ends with (not the spool's ENOTEMPTY).
  let listing: Promise<unknown> = Promise.resolve();
  // A whole push's archive, written by the plan's pass (see sentArchive).
  let early = false;
  // A whole push's early archive stands only when rsync reported every listed name.
  let sentEvery = false;
  // Stops a first sync's walk started before the plan (startWalk; only it runs rsync meanwhile).
  let stopWalk = async () => {};

  try {
    o.onProgress?.({ phase: 'listing', percent: 0, etaSeconds: null, bytesDone: 0, filesDone: 0, filesTotal: null, currentFile: null });
    const seen = readGenerationState(o.stateDir, o.storage.display);
    const verifyMs = (o.verifyIntervalHours ?? 24) * 3600_000;
    const verifyDue = o.verify || !seen || Date.now() - seen.verifiedAt >= verifyMs;
    // Opened at most once, and not at all when nothing changed.
    let opened: Promise<ArchiveHandle> | null = null;
    const archiveOnce = () => (opened ??= openArchive(o.stateDir, o.storage.display));
    // The home is listed while the storage lock is taken: the lock is one small round trip. With the
    // change journal, only the folders that changed are; the rest of the home is the archive's record.
    let overlay: ListedChanges | null = null;
    const lastQuiet = readQuiet(o.stateDir, o.storage.display);
    const listHome = async () => {
      const changes = o.localChanges && !verifyDue ? changedFolders(o.localChanges, o.excludes) : null;
      // Found as the last quiet run listed it, in find's own order: not sorted unless the run goes on.
      if (!changes) return listHomeToFile(o.home, o.excludes, homeFile, lastQuiet?.localRaw ? { rawDigest: lastQuiet.localRaw, digest: lastQuiet.local } : null);
      const quietLocal = lastQuiet?.local;
      if (!changes.folders.length && !changes.trees.length && quietLocal) {
        overlay = changes;
        return unchangedListing(quietLocal, homeFile);
      }
      // The journal vouches only for what the archive recorded: without one (or one of an older kind), list it all.
      const a = await archiveOnce();
      if (a.first || a.roundedTimes) return listToFile(o.home, o.excludes, homeFile);
      overlay = changes;
      return listChangedToFile(o.home, o.excludes, changes, homeFile);
    };
    const unsorted = listHome();
    unsorted.catch(() => {}); // awaited below
    listing = unsorted;
    // The idle case: the home as the last quiet run left it, and the storage's generation where this
    // laptop's last sync ended it. Every writer changes the generation before its first write, so this
    // one small read needs no lock; there is nothing to write.
    if (!verifyDue && lastQuiet) {
      const [generation, home] = await Promise.all([readGeneration(o.storage), unsorted]);
      if (generation === seen.generation && home.digest === lastQuiet.local) {
        trace('nothing changed (generation and home)');
        return nothingDone(!!o.dryRun, []);
      }
    }
    const localListing = unsorted.then((l) => (l.sort ? l.sort() : l));
    listing = localListing;
    localListing.catch(() => {}); // awaited below
    // rsync's temporary files live in Tabula's own areas, never beside the user's files: a run killed
    // mid-file must not leave a ".name.XXXXXX" that the next run would take for a new file. Leftovers
    // of a killed run are ours to remove (we hold the lock; each laptop has its own folder): the
    // release removes the folder, and a push empties it first. Two names deep, not three: rsync 3.5
    // opens and checks each name of the path, four times a file (11 fewer system calls a file sent).
    const hostPart = o.host.replace(/[^A-Za-z0-9_.-]/g, '_');
    const tmpRemote = `${STORAGE_AREA}/tmp-${hostPart}`;
    // A first sync onto an empty storage is written here and put in place once rsync has ended (the push).
    const stageRemote = `${STORAGE_AREA}/first-${hostPart}`;
    // Another laptop syncing with the same storage finishes first: listings and transfers never mix.
    storageLock = await acquireStorageLock(o.storage, { host: o.host, waitSeconds: o.lockWaitSeconds, onWaiting: o.onWaiting, createRoot: o.storage.isRemote && !o.dryRun, tmp: o.dryRun ? undefined : tmpRemote, silentSeconds: o.ioTimeoutSeconds, onLost: () => current?.cancel() });
    trace('storage locked');
    // The storage is as this laptop left it when its generation is the one our last sync ended at:
    // its listing would equal the archive, so it is not walked (but in full at least once a day).
    const skipRemote = !verifyDue && seen.generation === storageLock.generation;
    // Stopped when the storage goes silent for as long as a transfer may (IO_TIMEOUT_SECONDS).
    const listBounds = { silentSeconds: o.ioTimeoutSeconds ?? IO_TIMEOUT_SECONDS };
    let runs = 0;
    let bytesSent = 0;
    // The storage's temporary folder of this run, once it is ready (emptied, the generation bumped).
    let namesDir: string | null = null;
    /**
     * The `--files-from` of one batch. rsync 3.5 reads a local one a byte at a time (a poll and a read
     * per byte: ~5 million system calls for a first sync of 100,000 names, ~2 s of processor time,
     * 2-3x its own cost of sending); one on the receiving side it reads whole and hands to the sender in
     * its own buffered stream. So a long list sent to the storage goes there first (one `cat`), and
     * rsync reads it from there (`:path`). Anything else, or if that upload fails, reads it here.
     */
    const filesFrom = async (args: string[], listFile: string) => {
      const local = `--files-from=${listFile}`;
      if (!namesDir || args[args.length - 1] !== o.storage.rsyncRoot || fs.statSync(listFile).size < (o.namesOnStorageBytes ?? NAMES_ON_STORAGE_BYTES)) return local;
      const remoteList = `${namesDir}/names`;
      const fd = fs.openSync(listFile, 'r');
      try {
        const up = await o.storage.sh('cat > "$1"', [remoteList], fd);
        return up.code === 0 ? `--files-from=:${remoteList}` : local;
      } finally {
        fs.closeSync(fd);
      }
    };
    const ioTimeout = o.ioTimeoutSeconds ?? IO_TIMEOUT_SECONDS;
    const batchSize = Math.max(1, o.rsyncBatch ?? RSYNC_BATCH);
    /**
     * One rsync job over a list of names, run as one rsync per {@link RSYNC_BATCH} names: given its whole
     * list, rsync holds it all (86 MiB for a million names) and builds it before it sends anything. A
     * batch that ends with files skipped (23) or vanished (24) goes on to the next, as one rsync would go
     * on to the next file; any other failure, a cancel or a lost lock stops the job there. `onBatch` gets
     * each batch's names that rsync would send ('sent'), once that batch is over.
     */
    const rsync = async (phase: SyncProgress['phase'], args: string[], list: Iterable<string>, track: 'sent' | 'done' = 'done', total: number | null | (() => number | null) = null, onBatch?: (sent: Set<string>, n: number) => void) => {
      checkCancelled();
      // The names go to rsync through a file (--files-from), and what completed is written to one as
      // rsync reports it: read back only when the run failed part-way (an archive that advances only
      // for finished paths).
      const run0 = ++runs;
      const listFile = path.join(spool, `list-${run0}`);
      const doneFile = path.join(spool, `done-${run0}`);
      const names = list[Symbol.iterator]();
      const doneOut = track === 'done' ? createNameWriter(doneFile) : null;
      const sent = new Set<string>();
      const result: RsyncResult = { code: 0, signal: null, stderr: '', filesTransferred: 0, bytesTransferred: 0, spawnError: null };
      const started = performance.now();
      let [listed, batches, filesDone, bytesBefore, reported] = [0, 0, 0, 0, 0];
      let [firstOfBatch, toldAt] = [1, 0];
      // What the last progress line said: a file's own event repeats it (a bar sent back to 0 flickers).
      let last = { percent: 0, etaSeconds: null as number | null, bytesDone: 0 };
      try {
        for (;;) {
          const n = writeNames(listFile, names, batchSize);
          if (!n) break;
          // Stopped between two batches: told as a stopped rsync, so that the caller keeps what finished.
          if (cancelled || storageLock?.lost()) {
            Object.assign(result, { code: null, signal: 'SIGTERM' });
            break;
          }
          const batchStart = doneOut?.mark();
          const before = listed;
          listed += n;
          batches++;
          const of = (typeof total === 'function' ? total() : total) ?? listed;
          // The whole job's share done, counted in names: a batch's own percent is of its bytes.
          const share = (percent: number) => (batches === 1 && n < batchSize ? percent : Math.min(100, Math.floor(((before + (n * percent) / 100) / Math.max(of, 1)) * 100)));
          firstOfBatch = filesDone + 1;
          // The run's own limit (a checksum run's is longer), else the sync's.
          const given = args.find((a) => a.startsWith('--timeout='));
          const timeout = given ? Number(given.slice('--timeout='.length)) : ioTimeout;
          const from = args.includes('--files-from=-') ? await filesFrom(args, listFile) : null;
          const run = runRsync([...parseableOutput, ...(given ? [] : [`--timeout=${timeout}`]), ...(o.bandwidthLimitKBps ? [`--bwlimit=${o.bandwidthLimitKBps}`] : []), ...args.map((a) => (a === '--files-from=-' ? from! : a))], {
            item(item) {
              filesDone++;
              if (item.change[1] !== 'd') reported++;
              doneOut?.add(item.name.endsWith('/') ? item.name.slice(0, -1) : item.name);
              if (track === 'sent' && (item.change[0] === '<' || item.change[0] === '>')) sent.add(item.name);
              // Told for a batch's first file, then at most every PROGRESS_MS (not an object a file).
              const t = performance.now();
              if (filesDone > firstOfBatch && t - toldAt < PROGRESS_MS) return;
              [firstOfBatch, toldAt] = [Infinity, t];
              o.onProgress?.({ phase, ...last, filesDone, filesTotal: of, currentFile: item.name });
            },
            progress(p) {
              const percent = share(p.percent);
              const elapsed = (performance.now() - started) / 1000;
              const etaSeconds = percent === p.percent ? p.etaSeconds : percent > 0 ? Math.round((elapsed * (100 - percent)) / percent) : null;
              last = { percent, etaSeconds, bytesDone: bytesBefore + p.bytesDone };
              o.onProgress?.({ phase, ...last, filesDone, filesTotal: of, currentFile: null });
            },
          }, { outputFile: path.join(spool, 'rsync-output'), stallSeconds: timeout });
          current = run;
          const r = await run.done;
          current = null;
          // A printed name is not yet a file in place: rsync prints it on the sending side once its data
          // is sent, and on the receiving side just before the rename. Only a batch that ended well (0,
          // or 24: a source file vanished) vouches for its names; those of any other are not recorded,
          // and the next run finds each where it is (arrived: the same on both sides, agreed).
          if (r.code !== 0 && r.code !== 24) doneOut?.rewind(batchStart!);
          bytesBefore += r.bytesTransferred;
          result.filesTransferred += r.filesTransferred;
          result.bytesTransferred += r.bytesTransferred;
          if (result.stderr.length < 256 * 1024) result.stderr += r.stderr;
          // Files skipped (23) outweigh files vanished (24), as in one rsync's exit code.
          if (r.code !== 0 && result.code !== 23) Object.assign(result, { code: r.code, signal: r.signal, spawnError: r.spawnError, stalledSeconds: r.stalledSeconds });
          onBatch?.(sent, n);
          sent.clear();
          if ((r.code !== 0 && r.code !== 23 && r.code !== 24) || n < batchSize) break;
        }
      } finally {
        doneOut?.close();
        fs.rmSync(listFile, { force: true });
      }
      // Nothing to hand over (a phase with no removals after all): no round trip.
      if (!batches && result.code === 0) return { result, batches, reported, done: () => Promise.resolve(null), ok: true, empty: true };
      if (!args.includes('-n')) bytesSent += result.bytesTransferred;
      // What finished, sorted by name into a file: the archive's pass and the summary walk it in name order.
      const done = () => (doneOut ? sortNames(doneFile, path.join(spool, `done-sorted-${run0}`)) : Promise.reject(new Error('this rsync run kept no list of what finished')));
      return { result, batches, reported, done, ok: result.code === 0, empty: false };
    };
    /**
     * Makes the staging folder of a first sync. When a cut one left it (its content is taken up): the
     * size of the largest file there, which bounds how long rsync reads a file to compare it.
     */
    const prepareStage = async () => {
      const mk = await o.storage.sh('if [ -d "$1" ]; then printf "RESUME %s\\n" "$(find "$1" -type f -printf "%s\\n" | sort -rn | head -n 1)"; fi; mkdir -p -- "$1"', [`${o.storage.path}/${stageRemote}`], undefined, undefined, listBounds);
      if (mk.code !== 0) throw describeStorageScriptFailure(mk, { storage: o.storage.display, remote: o.storage.isRemote, doing: "prepare this sync's writes" });
      const out = mk.stdout.toString();
      return out.startsWith('RESUME') ? { largest: Number(out.slice(7).trim()) || 0 } : null;
    };
    // The whole push's files as the plan counts them, once it has: the walk's progress is told against it.
    let expected: number | null = null;
    /**
     * The whole home into this laptop's staging folder (a first sync onto an empty storage), as `rsync -a`
     * sends it: rsync walks the home itself, with the excludes and Tabula's own names as its own filters
     * (a list of every name costs it twice the processor time: it reads and checks each name's path, and
     * builds all of a batch before it sends anything). What it sends is read from its report, as for a
     * list of names: a file made since the listing goes too, and the next run agrees on it. Its top-level
     * names are moved into place once rsync has ended well (placeStaged), so each file is written at its
     * own name (--inplace: no temporary file and rename, 3% of rsync's time): nothing of the folder is
     * seen before all of it is placed. Nothing there to replace (no --backup) or resume from (no
     * --partial-dir). A staging folder a cut (or failed) first sync left is taken up again: what it holds
     * whole is passed over by its content (-c; size and time would miss an edit that restores them since),
     * and reported all the same (-ii), so that the archive records all it places; what is not in the home
     * goes. Started before the plan when the storage's listing is empty (syncOnce), else by the push.
     */
    const startWalk = async () => {
      const resume = await prepareStage();
      if (walkStopped) throw new Error("the first sync's walk was stopped");
      const keep = resume ? ['-c', '-ii', '--delete', '--delete-excluded', `--timeout=${ioTimeout + Math.ceil(resume.largest / CHECKSUM_BYTES_PER_SECOND)}`] : ['--ignore-times'];
      // One run over the home folder itself: the list's one name only counts the batch.
      return rsync('pushing', ['-a', '--no-D', ...wholeTreeFilters(o.excludes), '--inplace', ...keep, ...o.storage.bulkRsyncOptions, o.home.rsyncRoot, `${o.storage.rsyncRoot}${stageRemote}/`], ['.'], 'done', () => expected);
    };
    let walking: ReturnType<typeof startWalk> | null = null;
    let walkStopped = false;
    stopWalk = async () => {
      walkStopped = true;
      if (!walking) return;
      current?.cancel();
      await walking.catch(() => {});
      walking = null;
    };
    const remoteListing = skipRemote ? null : listToFile(o.storage, o.excludes, storageFile, listBounds);
    remoteListing?.catch(() => {}); // awaited below; no unhandled rejection while the home is listed
    const rawRemote = await remoteListing;
    trace(rawRemote ? 'storage listed' : 'storage unchanged (generation)');
    // A first sync onto an empty storage is one whole push: rsync starts walking the home into the
    // staging folder now, while the home is listed and planned. A plan that turns out to be more than
    // that (a name rsync would send but the listing skipped, an unreadable folder) stops it (stopWalk),
    // and the generation's bump removes the folder: nothing of it was ever seen on the storage.
    if (!o.dryRun && rawRemote && o.excludes.every(rsyncExact) && holdsNothing(rawRemote, o.excludes) && (await archiveOnce()).first) {
      walking = startWalk();
      walking.catch(() => {}); // awaited by the push, or stopped
      trace('first sync: walk started');
    }
    const rawLocal = await localListing;
    trace('home listed');
    const quiet = readQuiet(o.stateDir, o.storage.display);
    checkCancelled();
    if (quiet?.local === rawLocal.digest && (rawRemote ? rawRemote.exists && quiet.remote === rawRemote.digest : true)) {
      // Listed and found as this laptop left it: the generation it reads now stands for this state.
      if (rawRemote && !o.dryRun) {
        if (!storageLock.generation) await storageLock.bump();
        writeGenerationState(o.stateDir, { storage: o.storage.display, generation: storageLock.generation, verifiedAt: Date.now() });
      }
      return nothingDone(!!o.dryRun, quiet.skipped);
    }
    if (quiet) fs.rmSync(quietFile(o.stateDir), { force: true });
    const archive = await archiveOnce();
    if (archive.problem) console.error(archive.problem);
    // The home taken from the archive, which turned out missing or damaged: it cannot be told from it.
    // The run stops; the next lists the home in full (the journal's failed()).
    if (overlay && (archive.first || archive.roundedTimes)) throw new TabulaError('internal', 'The sync archive was missing or damaged; the next sync lists the whole home.', { retryable: true });
    const changed = overlay as ListedChanges | null;
    // Without an archive the generation says nothing: list after all.
    const listed = rawRemote ?? (archive.first ? await listToFile(o.storage, o.excludes, storageFile, listBounds) : null);
    if (!rawLocal.exists) throw new TabulaError('storage-invalid', `The home folder ${o.home.path} does not exist.`);
    trace('archive opened');

    // The three sides, merged by name. What this user may not read, on either side, is neither copied
    // nor deleted: the archive keeps what it knew of it, and the rest syncs.
    const blindDirs = new Set([...rawLocal.unreadable, ...(listed?.unreadable ?? [])]);
    const isBlind = (p: string, l: Listed | undefined, r: Listed | undefined) => {
      if (l === 'unreadable' || r === 'unreadable') return true;
      if (!blindDirs.size) return false;
      if (blindDirs.has(p)) return true;
      for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) if (blindDirs.has(p.slice(0, i))) return true;
      return false;
    };
    const sides = () => {
      const localFilter = createListingFilter(o.excludes);
      const remoteFilter = createListingFilter(o.excludes);
      return {
        archive: archiveEntries(archive),
        local: changed ? overlayBatches(archiveEntries(archive), listedBatches(homeFile, (rec) => localFilter.parse(withoutDot(rec))), changed) : listedBatches(homeFile, localFilter.parse),
        // Not listed: the storage as the archive says this laptop left it, read from the archive's own stream.
        remote: listed?.file ? listedBatches(listed.file, remoteFilter.parse) : emptyBatches(),
        localNotes: localFilter.notes,
        remoteNotes: remoteFilter.notes,
      };
    };
    /** The three sides merged; the storage's entry is the archive's view of it when it was not listed. */
    const merge3 = (s: ReturnType<typeof sides>, visit: (p: string, a: Entry | undefined, l: Listed | undefined, r: Listed | undefined) => void) =>
      mergeSorted(s.archive, s.local, s.remote, listed ? visit : (p, a, l) => visit(p, a, l, a && storageView(a)));
    /** The archive's entry, with the exact time a listing shows where an old archive had rounded it. */
    const archived = (a: Entry | undefined, l: Entry | undefined, r: Entry | undefined) => (a && archive.roundedTimes ? adoptListedTime(a, l, r) : a);

    // Pass one: the plan. What changes is written to files in the spool as it is found (path-list.ts);
    // only the entries of the few paths that need them later are kept (conflicts, content checks,
    // folders the plan settles at the end).
    const plan = {
      push: createPathList(path.join(spool, 'plan-push'), 1),
      pull: createPathList(path.join(spool, 'plan-pull'), 2),
      deleteRemote: createPathList(path.join(spool, 'plan-delete-remote'), 0),
      deleteLocal: createPathList(path.join(spool, 'plan-delete-local'), 0),
      agreed: createPathList(path.join(spool, 'plan-agreed'), 1),
      // Both changed to files of one size: each with the size and both times ("<size>:<home>:<storage>").
      compare: createPathList(path.join(spool, 'plan-compare'), 1),
      conflicts: [] as PlannedConflict[],
    };
    for (const list of [plan.push, plan.pull, plan.deleteRemote, plan.deleteLocal, plan.agreed, plan.compare]) cleanups.push(() => list.dispose());
    const listOf = { push: plan.push, pull: plan.pull, 'delete-remote': plan.deleteRemote, 'delete-local': plan.deleteLocal, agreed: plan.agreed };
    // The entries of a content check's two sides, from its record.
    let compared: { l: Entry; r: Entry } | null = null;
    let compareBytes = 0; // both sides read whole to compare: silent meanwhile (IO_TIMEOUT_SECONDS)
    const planner = createPlanner((p, d, kinds, late) => {
      if (d.do === 'conflict') plan.conflicts.push({ path: p, keep: d.keep });
      else if (d.do === 'compare') {
        plan.compare.add(p, kinds, `${compared!.l.size}:${compared!.l.mtime}:${compared!.r.mtime}`);
        compareBytes += compared!.l.size;
      }
      else if (d.do !== 'nothing') listOf[d.do][late ? 'addLate' : 'add'](p, kinds);
    });
    const involved = new Map<string, { a?: Entry; l?: Entry; r?: Entry }>();
    const typeChanged = new Set<string>();
    const counts = { archivedFiles: 0, localFiles: 0, remoteFiles: 0, learned: 0, remoteEntries: 0, localEntries: 0 };
    /**
     * Onto an empty storage with no archive, when the plan sends every entry of the home's listing, the
     * next archive is that listing: written by this pass whenever there is no archive (not by the second
     * pass over three listings after rsync, nor by one of its own beside rsync), without the storage's
     * stamps, which are added once read ({@link withStamps}). Used only when every name was reported
     * sent; otherwise the archive is written as always.
     */
    const sentArchive = path.join(spool, 'archive-sent');
    const sentFd = archive.first ? fs.openSync(sentArchive, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o600) : null;
    const sentOut = sentFd === null ? null : createRecordWriter(sentFd);
    const first = sides();
    try {
      await merge3(first, (p, a0, l0, r0) => {
        if (sentOut && l0 && l0 !== 'unreadable') sentOut.write(formatRecord(p, l0));
        if (l0 && l0 !== 'unreadable') counts.localEntries++;
        if (l0 && l0 !== 'unreadable' && l0.type !== 'd') counts.localFiles++;
        if (r0 && r0 !== 'unreadable' && r0.type !== 'd') counts.remoteFiles++;
        if (r0) counts.remoteEntries++;
        if (isBlind(p, l0, r0)) return;
        const [l, r] = [l0 as Entry | undefined, r0 as Entry | undefined];
        const a = archived(a0, l, r);
        if (a && a.type !== 'd') {
          counts.archivedFiles++;
          // A copy received (or sent) gets its inode and change time on that side from the next listing.
          if (a.stamp === undefined && l?.stamp !== undefined && sameEntry(l, a, 'exact')) counts.learned++;
          if (listed && a.remoteStamp === undefined && r?.stamp !== undefined && sameEntry(r, a, 'stored')) counts.learned++;
        } else if (a && !a.size && l?.type === 'd' && l.size) counts.learned++;
        if (l && r && l.type !== r.type) typeChanged.add(p);
        compared = l && r ? { l, r } : null;
        const d = planner.add(p, a, l, r);
        if (d.do === 'nothing' || d.do === 'compare') return;
        if (d.do === 'conflict' || a?.type === 'd') involved.set(p, { a, l, r });
      });
    } finally {
      sentOut?.flush();
      if (sentFd !== null) fs.closeSync(sentFd);
    }
    planner.finish();
    const local = { exists: true, ...first.localNotes };
    const remote = listed ? { exists: listed.exists, ...first.remoteNotes } : { exists: true, hasSentinel: true, skipped: [], reserved: [] };
    const unreadableSkips = (lf: ListingFile | null) => (lf?.unreadable ?? []).map((p) => ({ path: p, why: PERMISSION_DENIED }));
    trace('planned');
    // A first sync onto an empty storage sends the whole home: rsync walks it itself (startWalk), and passes
    // over devices, sockets and pipes as the listing does.
    const whole = archive.first && !!listed && counts.remoteEntries === 0 && !remote.skipped.length && local.skipped.every((s) => s.why === SPECIAL_FILE) && !rawLocal.unreadable.length && !plan.pull.count && !plan.deleteLocal.count && !plan.deleteRemote.count && !plan.compare.count && !plan.agreed.count && !plan.conflicts.length && o.excludes.every(rsyncExact);
    if (whole && plan.push.count) expected = plan.push.count;
    else await stopWalk();
    checkSafety(o, archive.first, remote, counts, plan);
    /** The types of a path the plan holds in memory (a content check, a conflict): "<archive><home><storage>". */
    const kindsOf = (p: string) => {
      const e = involved.get(p);
      return `${e?.a?.type ?? '-'}${e?.l?.type ?? '-'}${e?.r?.type ?? '-'}`;
    };

    const summary: SyncSummary = {
      ...nothingDone(!!o.dryRun, []),
      firstSync: archive.first,
      skipped: [...local.skipped, ...unreadableSkips(rawLocal), ...remote.skipped, ...unreadableSkips(listed), ...reservedInHome(local)],
      bytesTransferred: 0,
    };

    // What this run changes in the archive (only for paths it touches), written by a second pass over
    // the same three streams: 'push' and 'pull' take the copied side's entry, null removes.
    const overrides = new Map<string, Entry | null>();
    // What each phase copied: its list, and what finished when it did not all finish.
    const copied: Record<'pull' | 'push', Copied | null> = { pull: null, push: null };
    // Each phase's deletions, once done: the archive forgets those paths.
    const deleted: Record<'pull' | 'push', PathList | null> = { pull: null, push: null };
    // The storage's inode and change time of what this run sent, read when the lock is released.
    let stampsFile: string | null = null;
    const stampsPath = path.join(spool, 'stamps');
    // Both sides changed the same way: once the run gets that far, the archive learns it.
    let agreedSettled = false;
    const extra: string[] = []; // conflict copies made by this run: in no listing yet
    /** The next archive, as `fill` writes it, with the storage's stamps the release read: kept whole or not at all. */
    const newArchive = async (fill: (w: ReturnType<typeof createArchiveWriter>, stamps: ReturnType<typeof createStampLookup> | null) => unknown, done: { close(): void }[] = []) => {
      const w = createArchiveWriter(o.stateDir, o.storage.display);
      const stamps = stampsFile ? createStampLookup(stampsFile) : null;
      try {
        await fill(w, stamps);
        w.commit();
      } catch (err) {
        w.abort();
        throw err;
      } finally {
        stamps?.close();
        for (const c of done) c.close();
      }
    };
    const writeArchive = async () => {
      const pushed = walker(copied.push);
      const pulled = walker(copied.pull);
      const goneHere = walker(deleted.pull && { list: deleted.pull, finished: null });
      const goneThere = walker(deleted.push && { list: deleted.push, finished: null });
      const agreedNow = walker(agreedSettled ? { list: plan.agreed, finished: null } : null);
      await newArchive(async (w, stamps) => {
        const names = [...extra].sort(compareNames);
        let next = 0;
        const add = (p: string, e: Entry | undefined) => {
          if (e) w.add(p, e);
        };
        /** A copy this run sent: the storage's stamp for it, when the release read one. */
        const addSent = (p: string, e: Entry) => {
          const st = stamps?.get(p);
          add(p, st ? { ...e, remoteStamp: st } : e);
        };
        const addExtra = (before: string | null) => {
          while (next < names.length && (before === null || compareNames(names[next]!, before) < 0)) {
            const p = names[next++]!;
            if (pushed(p)) addSent(p, lstatEntry(path.join(o.home.path, p)));
          }
        };
        const again = sides();
        await merge3(again, (p, a0, l0, r0) => {
          addExtra(p);
          if (next < names.length && names[next] === p) next++; // listed after all
          const [l, r] = [l0 === 'unreadable' ? undefined : l0, r0 === 'unreadable' ? undefined : r0];
          const a = archived(a0, l, r);
          if (isBlind(p, l0, r0)) return add(p, a);
          const ov = overrides.get(p);
          if (ov === null) return;
          // In name order, every one of them (the walkers move on only when asked).
          const [gone1, gone2, sentNow, receivedNow, agreedHere] = [goneHere(p), goneThere(p), pushed(p), pulled(p), agreedNow(p)];
          if (gone1 || gone2) return;
          if (sentNow) return addSent(p, l ?? lstatEntry(path.join(o.home.path, p)));
          if (receivedNow) return add(p, r && received(r));
          if (ov) return add(p, ov);
          if (agreedHere) return add(p, l && (r?.stamp ? { ...l, remoteStamp: r.stamp } : l));
          add(p, a && learnStamps(a, l, listed ? r : undefined));
        });
        addExtra(null);
      }, [pushed, pulled, goneHere, goneThere, agreedNow]);
    };

    /** The early archive with the storage's stamps put in its records' fifth field ('-' there: formatRecord), as text. */
    const withStamps = () =>
      newArchive((w, stamps) => {
        for (const rec of readRecords(sentArchive)) {
          let sp = 0;
          for (let k = 0; k < 4; k++) sp = rec.indexOf(' ', sp + 1);
          const p = rec.slice(sp + 3);
          const st = rec[0] === 'd' ? undefined : stamps?.get(p);
          w.addRecord(p, st ? `${rec.slice(0, sp + 1)}${st}${rec.slice(sp + 2)}\0` : `${rec}\0`);
        }
      });


    // Both changed to the same size: rsync's checksum decides whether the content really differs.
    if (plan.compare.count) {
      o.onProgress?.({ phase: 'comparing', percent: 0, etaSeconds: null, bytesDone: 0, filesDone: 0, filesTotal: plan.compare.count, currentFile: null });
      // A first sync onto a storage that already holds the same files compares every one of them:
      // what comes of it goes to lists of its own, in name order, joined to the plan's.
      const sameContent = createPathList(path.join(spool, 'plan-same-content'), 1);
      const timesOnly = createPathList(path.join(spool, 'plan-times-only'), 1);
      cleanups.push(() => sameContent.dispose(), () => timesOnly.dispose());
      // The list is read a second time beside rsync's batches: only one batch's differing names are held.
      const walked = plan.compare.records();
      const { result } = await rsync('comparing', ['-a', '-n', '-c', `--timeout=${ioTimeout + Math.ceil(compareBytes / CHECKSUM_BYTES_PER_SECOND)}`, '--files-from=-', '--from0', '--no-implied-dirs', ...o.storage.rsyncOptions, o.home.rsyncRoot, o.storage.rsyncRoot], mapNames(plan.compare.records()), 'sent', plan.compare.count, (sent, n) => {
        for (let i = 0; i < n; i++) {
          const { name: p, kinds, extra } = walked.next().value as PathRecord;
          const [size, lt, rt] = extra.split(':');
          // With -c an item is sent ('<' to a remote, '>' locally) only when its content differs.
          if (sent.has(p)) {
            const [l, r]: Entry[] = [{ type: 'f', size: Number(size), mtime: BigInt(lt!) }, { type: 'f', size: Number(size), mtime: BigInt(rt!) }];
            const a: Entry | undefined = kinds[0] === '-' ? undefined : { type: kinds[0] as Entry['type'], size: 0, mtime: 0n }; // its type is all a conflict needs
            involved.set(p, { a, l, r });
            plan.conflicts.push({ path: p, keep: keepSide(l!, r!) });
          } else if (lt === rt) sameContent.add(p, kinds);
          else timesOnly.add(p, kinds); // same content: only the times differ
        }
      });
      walked.return(undefined);
      if (result.code !== 0) throw failure(result, o, cancelled);
      plan.agreed.join(sameContent);
      plan.push.join(timesOnly);
    }

    if (o.dryRun) {
      const names = (list: PathList) => list.firstFiles(SUMMARY_NAMES);
      return {
        ...summary,
        pulled: names(plan.pull),
        pushed: names(plan.push),
        deletedLocal: names(plan.deleteLocal),
        deletedRemote: names(plan.deleteRemote),
        counts: { pulled: plan.pull.files, pushed: plan.push.files, deletedLocal: plan.deleteLocal.files, deletedRemote: plan.deleteRemote.files },
        conflicts: plan.conflicts.map((c) => ({ path: c.path, conflictPath: '', kept: c.keep, at: now().toISOString() })),
      };
    }

    const stamp = stampOf(now(), o.host);
    // Where this run leaves the storage, recorded once the archive says the same.
    const verifiedAt = listed ? Date.now() : seen!.verifiedAt;
    const settled = () => writeGenerationState(o.stateDir, { storage: o.storage.display, generation: storageLock!.generation, verifiedAt });
    const pushes = plan.push.count + plan.deleteRemote.count + plan.conflicts.length > 0;
    let remoteTmpReady = false;
    // Every writer changes the generation before its first write: any laptop that reads it afterwards
    // lists the storage. A storage without one gets one, so that the next quiet run can skip. The
    // same round trip empties the temporary folder when this run sends files, and removes the staging
    // folder (of a cut first sync, or of this run's walk, stopped) unless this run's first sync goes on with it.
    if (pushes || !remote.hasSentinel || !storageLock.generation) {
      writeGenerationState(o.stateDir, null);
      await storageLock.bump(pushes ? tmpRemote : undefined, pushes && whole ? undefined : stageRemote);
      remoteTmpReady = pushes;
      if (pushes && o.storage.isRemote) namesDir = `${o.storage.path}/${tmpRemote}`;
    }
    if (!remote.hasSentinel) await writeSentinel(o, now());
    const transfers = plan.push.count + plan.pull.count + plan.deleteLocal.count + plan.deleteRemote.count + plan.conflicts.length;
    if (transfers === 0) {
      // Nothing moved: the common case, kept to two listings and (when needed) one small write.
      if (plan.agreed.count || archive.first || counts.learned || archive.roundedTimes) {
        agreedSettled = true;
        await writeArchive();
      }
      if (remote.hasSentinel) writeFileAtomic(quietFile(o.stateDir), JSON.stringify({ storage: o.storage.display, local: rawLocal.digest, localRaw: rawLocal.rawDigest, remote: listed?.digest ?? 'not listed', skipped: summary.skipped }));
      settled();
      return summary;
    }
    writeGenerationState(o.stateDir, null);
    const tmpLocal = path.join(o.stateDir, 'tmp');
    fs.rmSync(tmpLocal, { recursive: true, force: true });
    fs.mkdirSync(tmpLocal, { recursive: true });
    const prepareRemoteTmp = async () => {
      if (remoteTmpReady) return;
      remoteTmpReady = true;
      const mk = await o.storage.sh('rm -rf -- "$1" && mkdir -p -- "$1"', [`${o.storage.path}/${tmpRemote}`], undefined, undefined, listBounds);
      if (mk.code !== 0) throw describeStorageScriptFailure(mk, { storage: o.storage.display, remote: o.storage.isRemote, doing: "prepare this sync's writes" });
      if (o.storage.isRemote) namesDir = `${o.storage.path}/${tmpRemote}`;
    };
    /**
     * Moves the first sync's top-level names from the staging folder into place (one rename each: what
     * appears is whole), removes the folder and reads the storage's stamps of all it now holds (sorted
     * while the run goes on: `sortedStamps`). A name something else put on the storage meanwhile is left
     * as it is, and the sync stops there unrecorded: the next run compares both sides.
     */
    let sortedStamps: Promise<string | null> | null = null;
    const placeStaged = async (topNames: Iterable<string>) => {
      const names = path.join(spool, 'top-level');
      const w = createNameWriter(names);
      try {
        for (const name of topNames) w.add(name);
      } finally {
        w.close();
      }
      const unsorted = `${stampsPath}.unsorted`;
      const [fd, outFd] = [fs.openSync(names, 'r'), fs.openSync(unsorted, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600)];
      try {
        const mv = await o.storage.sh(PLACE_SCRIPT, [o.storage.path, stageRemote], fd, outFd, listBounds);
        if (mv.code === 6) {
          const kept = mv.stderr.split('\n').filter(Boolean);
          throw new TabulaError('storage-permission', `${kept[0]?.replace(/^\.\//, '') ?? 'A name'}${kept.length > 1 ? ` and ${kept.length - 1} more` : ''} appeared on the storage ${o.storage.display} while the first sync ran and ${kept.length > 1 ? 'were' : 'was'} left as it is there; the next sync compares both sides.`, { retryable: true });
        }
        if (mv.code !== 0) throw describeStorageScriptFailure(mv, { storage: o.storage.display, remote: o.storage.isRemote, doing: 'put the first sync in place' });
        trace('placed, stamps read');
      } finally {
        fs.closeSync(fd);
        fs.closeSync(outFd);
      }
      // Not sorted: the archive goes without them (unknown stamps fall back to size and time).
      sortedStamps = sortNames(unsorted, stampsPath, ['-t', ' ', '-k', '2']).catch(() => null);
      void sortedStamps.then(() => trace('stamps sorted'));
    };

    // Phase 0: conflicts. Each is settled so that an interruption at any point loses nothing and the
    // next run does not see the same conflict again.
    // Which names a conflict copy could take are in use on some side: one more pass, only at a conflict.
    const taken = new Set<string>();
    if (plan.conflicts.length) {
      const prefixes = new Set(plan.conflicts.map((c) => conflictPrefix(c.path)));
      const s = sides();
      await merge3(s, (p) => {
        for (let i = p.indexOf(CONFLICT_MARK, p.lastIndexOf('/') + 1); i >= 0; i = p.indexOf(CONFLICT_MARK, i + 1)) {
          if (prefixes.has(p.slice(0, i + CONFLICT_MARK.length))) taken.add(p);
        }
      });
    }
    let origins: Promise<OriginLookup> | null = null;
    for (const c of plan.conflicts) {
      checkCancelled();
      const { l, r } = involved.get(c.path)! as { l: Entry; r: Entry };
      const older = c.keep === 'local' ? r : l;
      // The storage's version carries the name of the laptop that wrote it.
      const from = (await (origins ??= readOrigins(o.storage)))(c.path, r) ?? undefined;
      const conflictPath = freeConflictName(c.path, nsToDate(older.mtime), c.keep === 'local' ? (from ?? 'storage') : o.host, (p) => taken.has(p) || extra.includes(p) || exists(path.join(o.home.path, p)));
      if (c.keep === 'remote') {
        // Ours is older: step aside, take theirs, send ours under the conflict name.
        moveNoClobber(path.join(o.home.path, c.path), path.join(o.home.path, conflictPath));
        plan.pull.addLate(c.path, kindsOf(c.path));
      } else {
        // Ours is newer: bring theirs in under the conflict name, then both go up.
        const staging = path.join(o.stateDir, 'staging');
        fs.rmSync(staging, { recursive: true, force: true });
        fs.mkdirSync(staging, { recursive: true });
        const { result } = await rsync('pulling', ['-a', ...NO_SET_ID, '--files-from=-', '--from0', `--temp-dir=${tmpLocal}`, ...o.storage.rsyncOptions, o.storage.rsyncRoot, staging + '/'], [c.path], 'sent');
        if (result.code !== 0) throw failure(result, o, cancelled);
        moveNoClobber(path.join(staging, c.path), path.join(o.home.path, conflictPath));
        overrides.set(c.path, received(r)); // theirs is now kept locally: the name is ours to push
        await writeArchive();
        plan.push.addLate(c.path, kindsOf(c.path));
      }
      extra.push(conflictPath);
      plan.push.addLate(conflictPath, `-${older.type}-`);
      summary.conflicts.push({ path: c.path, conflictPath, kept: c.keep, at: now().toISOString(), ...(from ? { from } : {}) });
    }
    if (summary.conflicts.length) (await import('./conflict-store')).recordConflicts(o.stateDir, summary.conflicts);

    // Phase 1: storage → home, then phase 2: home → storage. Each removes first, then copies:
    // deletions, and whatever stands where a path changes type (a folder that became a file, or the
    // reverse), go in one rsync run from an empty folder with --delete-missing-args and --force, so
    // a deleted folder with contents goes in one run, whole, into the versions area. Files this laptop
    // replaces or deletes are kept in a local versions folder: a person may have edited one after the listing.
    const localVersions = path.join(o.stateDir, 'versions', stamp);
    const emptyRoot = path.join(o.stateDir, 'empty');
    // What this run sent (files and links), in name order, for the storage's stamps (the release), and
    // the newest of them for the record of which laptop wrote what (origin-log.ts).
    const sentFile = path.join(spool, 'sent');
    const sentNames = createNameWriter(sentFile);
    cleanups.push(() => sentNames.close());
    const lastSent: string[] = [];
    const transfer = async (phase: 'pulling' | 'pushing', copy: PathList, del: PathList) => {
      const [dst, backupDir, tmp] = phase === 'pulling' ? [o.home, localVersions, tmpLocal] : [o.storage, `${STORAGE_AREA}/versions/${stamp}`, tmpRemote];
      const src = phase === 'pulling' ? o.storage : o.home;
      const fromSide = phase === 'pulling' ? 2 : 1;
      const side = phase === 'pulling' ? 'pull' : 'push';
      if (!copy.count && !del.count) return;
      if (phase === 'pushing') await prepareRemoteTmp();
      const backup = ['--backup', `--backup-dir=${backupDir}`];
      // The empty source holds the parent folders of what goes (rsync reads a listed name's parents
      // even with --no-implied-dirs, and would call them vanished); their own times are not sent.
      fs.rmSync(emptyRoot, { recursive: true, force: true });
      const changing = typeChanged.size ? filterRecords(copy.records(), (r) => typeChanged.has(r.name)) : [];
      const removals = mapNames(topmostOf(mergeRecords(del.records(), changing)), (p) => fs.mkdirSync(path.join(emptyRoot, path.dirname(p)), { recursive: true }));
      const r0 = await rsync(phase, ['-a', '--files-from=-', '--from0', '--no-implied-dirs', '--delete-missing-args', '--force', ...backup, ...o.storage.rsyncOptions, emptyRoot + '/', dst.rsyncRoot], removals, 'sent');
      if (!r0.empty) {
        const r = r0;
        if (!r.ok) {
          await writeArchive(); // what did complete is not redone
          throw failure(r.result, o, cancelled);
        }
        deleted[side] = del;
        summary[phase === 'pulling' ? 'deletedLocal' : 'deletedRemote'] = del.firstFiles(SUMMARY_NAMES);
        summary.counts[phase === 'pulling' ? 'deletedLocal' : 'deletedRemote'] = del.files;
      }
      if (!copy.count) return;
      // --ignore-times: the plan already chose these files; rsync's own quick check (size and whole
      // second) would skip a same-size edit made within the second. Its delta transfer still sends
      // only what differs. The list is in name order: parents first, and the archive's pass walks it.
      // --ignore-missing-args: a name gone since the listing (deleted while a long first sync ran, before
      // its batch started) is passed over, as one that vanishes mid-run is (24); not reported, it is not
      // recorded, and the next run sees where it went.
      // --no-implied-dirs: the list names every folder that changes; rsync's handling of each name's
      // parent folders took a third of its processor time in a first sync (12.8 s against 7.9 s at
      // 100,000 files), and a parent that is a link on the receiving side is refused, not replaced.
      const setIds = phase === 'pulling' ? NO_SET_ID : [];
      // --temp-dir: a receiving rsync killed outright (a storage path on this laptop, a NAS that loses
      // power) leaves its temporary file behind, and beside the file it would be a ".name.XXXXXX" that
      // the next run (this laptop's or another's) takes for the user's. It is most of rsync's extra work
      // on the storage (a first sync of 10,000 files: 658k system calls there, 339k without it; `rsync -a`
      // 210k; a third of rsync's time at 100,000 files on a tmpfs). A first sync onto an empty storage
      // needs none (startWalk): it goes into this laptop's staging folder, started before the plan.
      const walk = phase === 'pushing' && whole;
      early = walk && copy.count === counts.localEntries && sentOut !== null;
      const r = walk
        ? await (walking ??= startWalk())
        : await rsync(phase, ['-a', ...setIds, '--no-implied-dirs', '--ignore-missing-args', '--ignore-times', `--partial-dir=${PARTIAL_DIR}`, ...backup, `--temp-dir=${tmp}`, ...o.storage.rsyncOptions, '--files-from=-', '--from0', src.rsyncRoot, dst.rsyncRoot], mapNames(copy.records()), 'done', copy.count);
      trace(`${phase}: rsync ended`);
      // 24: a file vanished from the source since it was listed; the rest went, and the next run sees the change.
      const partial = r.result.code === 24;
      // Every file and link of the list reported: all went. Fewer (one gone since the listing, passed
      // over): what went is read from rsync's report, as after a failure. Not so for a walk: rsync also
      // sends what was made since the listing, so a count could hide a listed name that went missing
      // behind a new one: every listed name is looked up in rsync's report.
      const finished = r.ok && r.reported === copy.files && !walk ? null : await r.done();
      // Still in the staging folder, nothing of it on the storage: none of it is recorded.
      if (walk && !r.ok && !partial) throw failure(r.result, o, cancelled);
      // Put in place on the storage while the names are checked here.
      const placing = walk ? placeStaged(mapNames(filterRecords(copy.records(), (rec) => !rec.name.includes('/')))) : null;
      placing?.catch(() => {}); // awaited below
      copied[side] = { list: copy, finished };
      // The summary speaks of files (and links), as a person counts them, not folders.
      const names: string[] = [];
      let files = 0;
      const isFinished = finished ? createNameLookup(finished) : null;
      let missing = 0;
      try {
        for (const { name, kinds } of copy.records()) {
          if (isFinished && !isFinished(name)) {
            missing++;
            continue;
          }
          if (phase === 'pushing' && kinds[1] !== 'd') {
            sentNames.add(name);
            lastSent.push(name);
            if (lastSent.length >= 2 * ORIGIN_LINES) lastSent.splice(0, ORIGIN_LINES);
          }
          if (kinds[fromSide] === 'd') continue;
          files++;
          if (names.length < SUMMARY_NAMES) names.push(name);
        }
      } finally {
        isFinished?.close();
      }
      if (walk) {
        trace(`${phase}: names checked`);
        await placing;
        trace(`${phase}: put in place`);
        sentEvery = r.ok && missing === 0;
      }
      summary[side === 'pull' ? 'pulled' : 'pushed'] = names;
      summary.counts[side === 'pull' ? 'pulled' : 'pushed'] = files;
      if (!r.ok && !partial) {
        await writeArchive();
        throw failure(r.result, o, cancelled);
      }
      // A folder sent by one batch had files written into it by a later one, which left its time at
      // that moment: the folders of the list get their times (and modes) once more, and nothing else.
      if (r.batches > 1) {
        const folders = mapNames(filterRecords(copy.records(), (rec) => rec.kinds[fromSide] === 'd'));
        const f = await rsync(phase, ['-a', ...setIds, '--files-from=-', '--from0', '--no-implied-dirs', '--ignore-missing-args', ...o.storage.rsyncOptions, src.rsyncRoot, dst.rsyncRoot], folders, 'sent');
        if (!f.ok && f.result.code !== 24) {
          await writeArchive();
          throw failure(f.result, o, cancelled);
        }
      }
    };
    await transfer('pulling', plan.pull, plan.deleteLocal);
    trace('pulled');
    await transfer('pushing', plan.push, plan.deleteRemote);
    sentNames.close();
    // Which laptop wrote what (origin-log.ts): the newest records only, as the file on the storage keeps them.
    await recordPushed(o.storage, o.stateDir, o.host, lastSent.slice(-ORIGIN_LINES).flatMap((p): [string, Entry][] => {
      try {
        return [[p, lstatEntry(path.join(o.home.path, p))]];
      } catch {
        return []; // gone since: no record
      }
    }));
    trace('pushed');

    // Done with the storage: the release also reads its inode and change time of what was sent, so
    // that the next edit there, even one restoring size and time, is seen.
    // Onto an empty storage, all it holds now is what this run sent: one walk of it, sorted here.
    // A first sync read them as it put its files in place; its release goes while its archive is written.
    const releasing = storageLock.release([], whole ? undefined : { names: sentFile, stamps: stampsPath });
    if (whole) stampsFile = await sortedStamps;
    else {
      await releasing;
      stampsFile = stampsPath;
      trace('released (stamps read)');
    }
    agreedSettled = true;
    // Every name sent and reported (a whole push's early archive stands), else the pass over the listings.
    const sentWhole = early && sentEvery && !copied.pull;
    if (sentWhole) await withStamps();
    else await writeArchive();
    settled();
    trace(sentWhole ? 'archive saved (written during the push)' : 'archive saved');
    await releasing;
    // A storage that just stopped answering (the release) would hold the prune as long again: a later run prunes.
    if (!storageLock.silent()) await pruneVersions(o);
    trace('done');
    return { ...summary, bytesTransferred: bytesSent };
  } finally {
    await stopWalk();
    for (const close of cleanups) close();
    await storageLock?.release();
    await listing.catch(() => {});
    release();
    fs.rmSync(spool, { recursive: true, force: true, maxRetries: 3 });
  }

  function failure(result: Awaited<RsyncRun['done']>, opts: SyncOptions, wasCancelled: boolean) {
    // Another laptop took the storage over: that is why the transfer stopped between two batches.
    const lost = storageLock?.lost();
    if (lost) return new TabulaError('already-running', lost, { retryable: true });
    return describeRsyncFailure(result, { home: opts.home.path, storage: opts.storage.display, cancelled: wasCancelled });
  }

}

/** For TABULA_SYNC_TRACE: the heap, the process's resident memory now and at its peak (VmHWM), its own processor time (not its children's). */
function memoryNow(): string {
  const kib = (k: string) => Math.round(Number(new RegExp(`${k}:\\s+(\\d+)`).exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) / 1024);
  const cpu = process.cpuUsage();
  return `heap ${(process.memoryUsage().heapUsed / 1048576).toFixed(0)} MiB, rss ${kib('VmRSS')} MiB (anon ${kib('RssAnon')}), peak ${kib('VmHWM')} MiB, own cpu ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s`;
}

/**
 * Writes the next `max` names for rsync's --files-from (NUL-separated) in pieces, never as one string;
 * returns how many. The iterator is left where it stopped, for the next batch.
 */
function writeNames(file: string, names: Iterator<string>, max: number): number {
  const w = createNameWriter(file);
  let n = 0;
  try {
    for (let next; n < max && !(next = names.next()).done; n++) w.add(next.value);
  } finally {
    w.close();
  }
  return n;
}

/** The names of records, with `each` called on each as it passes (before rsync reads the list). */
function* mapNames(records: Iterable<PathRecord>, each?: (p: string) => void): Generator<string> {
  for (const r of records) {
    each?.(r.name);
    yield r.name;
  }
}

function* filterRecords(records: Iterable<PathRecord>, keep: (r: PathRecord) => boolean): Generator<PathRecord> {
  for (const r of records) if (keep(r)) yield r;
}

/**
 * The records not inside another one of the list (removing a folder removes what it holds), in name
 * order: a folder sorts before what it holds, so only the folders kept so far need remembering.
 */
function* topmostOf(records: Iterable<PathRecord>): Generator<PathRecord> {
  const folders = new Set<string>();
  for (const r of records) {
    let inside = false;
    if (folders.size) for (let i = r.name.lastIndexOf('/'); i > 0 && !inside; i = r.name.lastIndexOf('/', i - 1)) inside = folders.has(r.name.slice(0, i));
    if (inside) continue;
    // Only a folder on some side can hold another listed path.
    if (r.kinds.includes('d')) folders.add(r.name);
    yield r;
  }
}

function createNameWriter(file: string) {
  // O_APPEND: after a rewind (a truncate), the next names go at the new end.
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW, 0o600);
  const out = createRecordWriter(fd);
  let closed = false;
  return {
    // rsync skips --files-from lines that start with ';' or '#' (comments): a leading ./ keeps every name.
    add(p: string) {
      out.write(`./${p}\0`);
    },
    /** Where the names written so far end, for {@link rewind}. */
    mark(): number {
      out.flush();
      return fs.fstatSync(fd).size;
    },
    /** Forgets the names written since `mark`. */
    rewind(mark: number) {
      out.flush();
      fs.ftruncateSync(fd, mark);
    },
    close() {
      if (closed) return;
      closed = true;
      out.flush();
      fs.closeSync(fd);
    },
  };
}

/**
 * Names rsync reported ("./name\0", in its own order) sorted by name into `to` (sort -z under LC_ALL=C,
 * byte order, spilling to disk like the listings): a transfer that failed at 900,000 of a million files
 * is never read into memory. `key`: sort's key options, for records with something before the name.
 */
function sortNames(file: string, to: string, key: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const sort = spawn('sort', ['-z', ...key, '-S', '16M', '-o', to, '--', file], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stderr = '';
    sort.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    sort.on('error', reject);
    sort.on('close', (code) => (code === 0 ? resolve(to) : reject(new TabulaError('internal', `Could not sort the list of copied files: ${stderr.trim() || `exit ${code}`}`))));
  });
}

/** Whether a name is in a sorted names file ("./name\0"), asked in name order: the file is read once, never held. */
function createNameLookup(file: string): ((p: string) => boolean) & { close(): void } {
  const it = readRecords(file);
  let head = it.next();
  const has = (p: string) => {
    while (!head.done && compareNames(head.value.slice(2), p) < 0) head = it.next();
    return !head.done && head.value.slice(2) === p;
  };
  return Object.assign(has, { close: () => void it.return(undefined) });
}

/**
 * The storage's stamps of what was sent ("<inode>:<ctime> ./<name>\0", in name order), looked up in
 * name order. Read from the local file synchronously, a piece at a time: the archive's second pass
 * asks once per name sent, and a promise for each of a million would cost more than the read.
 */
function createStampLookup(file: string) {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 14);
  let rest = Buffer.alloc(0);
  let records: string[] = [];
  let i = 0;
  let ended = false;
  const head = (): [string, string] | null => {
    for (;;) {
      while (i < records.length) {
        const rec = records[i]!;
        const sp = rec.indexOf(' ');
        if (sp > 0 && rec.startsWith('./', sp + 1)) return [rec.slice(sp + 3), rec.slice(0, sp)];
        i++; // not a stamp record (a lost lock's message): skipped
      }
      if (ended) return null;
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) {
        ended = true;
        fs.closeSync(fd);
        records = rest.length ? [rest.toString('utf8')] : [];
      } else {
        const all = Buffer.concat([rest, buf.subarray(0, n)]);
        const last = all.lastIndexOf(0);
        records = last < 0 ? [] : all.toString('utf8', 0, last).split('\0');
        rest = Buffer.from(last < 0 ? all : all.subarray(last + 1));
      }
      i = 0;
    }
  };
  return {
    get(p: string): string | undefined {
      for (let h = head(); h; h = head()) {
        const cmp = compareNames(h[0], p);
        if (cmp > 0) return undefined;
        i++;
        if (cmp === 0) return h[1];
      }
      return undefined;
    },
    close() {
      if (!ended) fs.closeSync(fd);
      ended = true;
    },
  };
}

/** A phase's copies: its list, and what finished when not all did (a file of names sorted by name). */
interface Copied {
  list: PathList;
  finished: string | null;
}

/**
 * Whether a name is among a list's (finished) paths, asked in name order (the archive's second pass):
 * the list is read once beside the listings, never held.
 */
function walker(c: Copied | null): ((p: string) => boolean) & { close(): void } {
  const cursor = c?.list.cursor();
  const finished = c?.finished ? createNameLookup(c.finished) : null;
  const has = (p: string) => !!cursor && cursor.get(p) !== undefined && (!finished || finished(p));
  return Object.assign(has, {
    close: () => {
      cursor?.close();
      finished?.close();
    },
  });
}

/** Batches of a spooled listing's entries (unreadable files marked), through the listing filter. */
async function* listedBatches(file: string, parse: ReturnType<typeof createListingFilter>['parse']): AsyncGenerator<[string, Listed][]> {
  for await (const batch of recordBatches(file)) {
    const out: [string, Listed][] = [];
    for (const rec of batch) {
      const e = parse(rec);
      if (e) out.push([e.name, e.entry]);
    }
    yield out;
  }
}

async function* emptyBatches(): AsyncGenerator<[string, Listed][]> {}

/** The storage as the archive says this laptop left it: its own stamps in the place a listing puts them. */
const storageView = (a: Entry): Entry => ({ type: a.type, size: a.size, mtime: a.mtime, ...(a.remoteStamp ? { stamp: a.remoteStamp } : {}) });

/**
 * The archive's entry with the inode and change time a listing shows for the same copy, where the
 * archive did not know them yet (a copy received or sent): a later edit restoring size and time is seen.
 */
function learnStamps(a: Entry, l: Entry | undefined, r: Entry | undefined): Entry {
  if (a.type === 'd') return !a.size && l?.type === 'd' && l.size ? { ...a, size: l.size } : a; // its permissions, from an archive of before
  let e = a;
  if (a.stamp === undefined && l?.stamp !== undefined && sameEntry(l, a, 'exact')) e = { ...e, stamp: l.stamp };
  if (a.remoteStamp === undefined && r?.stamp !== undefined && sameEntry(r, a, 'stored')) e = { ...e, remoteStamp: r.stamp };
  return e;
}

/** Names in the home that belong to Tabula on the storage: never synced, and said so rather than left out silently. */
function reservedInHome(local: ListingNotes): Listing['skipped'] {
  const why = "the name is Tabula's own on the storage";
  const out: Listing['skipped'] = local.reserved.filter((p) => p === STORAGE_AREA).map((p) => ({ path: p, why }));
  if (local.hasSentinel) out.push({ path: SENTINEL, why });
  return out;
}

/** An entry received from the storage: its stamp there is the storage's; the home's comes with the next listing. */
const received = (r: Entry): Entry => ({ type: r.type, size: r.size, mtime: r.mtime, ...(r.stamp ? { remoteStamp: r.stamp } : {}) });

/** A conflict copy made during this run, as the archive records it: the very integer a later listing reads. */
function lstatEntry(file: string): Entry {
  const st = fs.lstatSync(file, { bigint: true });
  return { type: st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f', size: st.isDirectory() ? Number(st.mode & 0o777n) : Number(st.size), mtime: st.mtimeNs };
}

interface Counts {
  archivedFiles: number;
  localFiles: number;
  remoteFiles: number;
}

function checkSafety(o: SyncOptions, first: boolean, remote: { exists: boolean; hasSentinel: boolean }, counts: Counts, plan: { deleteLocal: PathList; deleteRemote: PathList }) {
  // The message says what was found and that nothing changed; how to go ahead anyway is for the CLI
  // and the window to say in their own terms. The files it would delete are the details.
  const refuse = (why: string, deletions: PathList) => {
    const list = deletions.firstFiles(50).map((p) => displayPath(path.join(o.home.path, p), o.home.path));
    return new TabulaError('sync-refused', `${why} Nothing was changed.`, { details: list, detailsTotal: deletions.files });
  };
  if (!remote.exists && !o.storage.isRemote) {
    throw new TabulaError('storage-unreachable', `The storage folder ${o.storage.display} does not exist or is not mounted.`, { retryable: true });
  }
  if (first || o.force) return;
  const deletes = (n: number) => (n ? ` It would delete ${n} ${n === 1 ? 'file' : 'files'}.` : '');
  const share = { local: plan.deleteLocal.files, remote: plan.deleteRemote.files, archived: counts.archivedFiles };
  if (!remote.exists || !remote.hasSentinel) {
    throw refuse(`The storage ${o.storage.display} has no Tabula marker (${SENTINEL}): it may be empty, replaced or not mounted.${deletes(share.local)}`, plan.deleteLocal);
  }
  if (share.archived > 0 && !counts.remoteFiles) throw refuse(`The storage ${o.storage.display} is empty.${deletes(share.local)}`, plan.deleteLocal);
  if (share.archived > 0 && !counts.localFiles) throw refuse(`Your home folder is empty.${deletes(share.remote)}`, plan.deleteRemote);
  // The share applies at any size, as in rclone bisync: in a small home a few deleted files are most
  // of it, and an emptied folder of 6 files deserves the same question as one of 6,000.
  const max = o.maxDeleteShare ?? 0.5;
  const limit = `more than ${Math.round(max * 100)}%`;
  if (share.local / share.archived > max) {
    throw refuse(`This sync would delete ${share.local} of ${share.archived} files in your home (${limit}).`, plan.deleteLocal);
  }
  if (share.remote / share.archived > max) {
    throw refuse(`This sync would delete ${share.remote} of ${share.archived} files on the storage (${limit}).`, plan.deleteRemote);
  }
}

/**
 * Whether rsync's own --exclude reads a pattern exactly as the listing's matcher does (excludes.ts):
 * plain names, "*" within one component, a leading "/" anchoring at the top of the home, a trailing "/"
 * for folders. Character classes, "?", "**", escapes and rsync's rule prefixes are left to the listing.
 */
export function rsyncExact(pattern: string): boolean {
  return /[^/]/.test(pattern) && !/[?[\]\\]|\*\*|^[-+!]|^\s|\s$/.test(pattern);
}

// $1 the storage's folder, $2 the staging folder in it; the top-level names on stdin (NUL-separated).
// Moves them into place (one mv for all: one a name took a third of a second at 250 names) and removes the
// folder; then prints the inode and change time of every file and link but Tabula's own: all of it is
// what this first sync sent (one walk, where find given each name checks its path name by name). A name
// it could not move (something is there already, or came meanwhile: mv -n leaves it) goes to stderr, and
// it exits 6.
const PLACE_SCRIPT = `
cd -- "$1" 2>/dev/null || exit 3
root=$(pwd -P) && cd -- "$2" || exit 3
kept=$(xargs -0 -r sh -c '
r=$1; shift; k=
for n; do
  shift
  { [ -e "$n" ] || [ -L "$n" ]; } || continue
  if [ -e "$r/$n" ] || [ -L "$r/$n" ]; then printf "%s\\n" "$n" >&2; k=x; else set -- "$@" "$n"; fi
done
[ $# -eq 0 ] || mv -n -- "$@" "$r" || exit 1
for n; do if [ -e "$n" ] || [ -L "$n" ]; then printf "%s\\n" "$n" >&2; k=x; fi; done
printf "%s" "$k"' sh "$root") || exit 5
cd -- "$root" && rm -rf -- "$2" || exit 5
[ -z "$kept" ] || exit 6
find . -mindepth 1 \\( -path ./${STORAGE_AREA} -o -name ${PARTIAL_DIR} \\) -prune -o ! -type d -printf '%i:%C@ ./%P\\0' 2>/dev/null
`;

/** Whether a storage's listing holds nothing to sync: no entry (Tabula's own names aside), none skipped. */
function holdsNothing(lf: ListingFile, excludes: string[]): boolean {
  if (!lf.exists || !lf.file || lf.unreadable.length || fs.statSync(lf.file).size > 64 * 1024) return false;
  const { parse, notes } = createListingFilter(excludes);
  return fs.readFileSync(lf.file, 'utf8').split('\0').every((rec) => !parse(rec)) && !notes.skipped.length;
}

/** The listing's exclusions as rsync filters: the excludes, Tabula's own names (tree.ts listScript), the marker. */
function wholeTreeFilters(excludes: string[]): string[] {
  return [...excludes, `/${STORAGE_AREA}`, PARTIAL_DIR, `/${SENTINEL}`].map((p) => `--exclude=${p}`);
}

/** Versions older than the retention go, on the storage and locally (checked at most once an hour). */
async function pruneVersions(o: SyncOptions) {
  const stampFile = path.join(o.stateDir, 'versions-pruned');
  const last = fs.existsSync(stampFile) ? fs.statSync(stampFile).mtimeMs : 0;
  if (Date.now() - last < 3600_000 && (o.versionsRetentionDays ?? 30) >= 1) return;
  fs.writeFileSync(stampFile, '');
  const minutes = String(Math.round((o.versionsRetentionDays ?? 30) * 24 * 60));
  const script = 'cd -- "$1" 2>/dev/null || exit 0; find . -mindepth 1 -maxdepth 1 -type d -mmin +"$2" -exec rm -rf -- {} +';
  // A storage that stops answering meanwhile ends the prune (at its I/O timeout over ssh), not the sync's result.
  const bounds = o.ioTimeoutSeconds ? { silentSeconds: o.ioTimeoutSeconds } : undefined;
  await Promise.all([o.storage.sh(script, [`${o.storage.path}/${STORAGE_AREA}/versions`, minutes], undefined, undefined, bounds), o.home.sh(script, [path.join(o.stateDir, 'versions'), minutes])]);
}

