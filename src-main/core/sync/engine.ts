// One bidirectional sync run between the home and the storage, with the safety contract of Unison and
// rclone bisync: nothing a person made is silently lost, an empty or unmounted side never wipes the
// other, overwritten and deleted files go to a versioned area, and an interrupted run leaves both sides
// and the archive consistent so that the next run finishes the job.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { TabulaError } from '../../common/errors';
import { writeFileAtomic } from '../atomic-file';
import { displayPath } from '../paths';
import { parseableOutput, runRsync, type RsyncRun } from '../rsync';
import { describeRsyncFailure } from '../rsync-errors';
import { loadArchive, adoptListedTimes, saveArchive, type LoadedArchive } from './archive';
import { freeConflictName, moveNoClobber, recordConflicts, type ConflictRecord } from './conflicts';
import type { LocalChanges } from './change-journal';
import type { Endpoint } from './endpoint';
import { createMatcher, prunableDirs } from './excludes';
import { listChangedFolders } from './local-changes';
import { acquireLock } from './local-lock';
import { deletionShare, keepSide, planSync, sameEntry, type SyncPlan } from './plan';
import { readOrigins, recordPushed, type OriginLookup } from './origin-log';
import { writeSentinel } from './sentinel';
import { acquireStorageLock, readGeneration, readGenerationState, writeGenerationState, type StorageLock } from './storage-lock';
import { listScript, nsToDate, parseListing, PERMISSION_DENIED, SENTINEL, STORAGE_AREA, PARTIAL_DIR, type Entry, type Listing, type Tree } from './tree';

// Kept for the callers of before the split (the sync service, tests).
export { adoptListedTimes, archiveStore, loadArchive, type LoadedArchive } from './archive';
export { conflictStore, recordConflicts, type ConflictRecord } from './conflicts';

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
}

export interface SyncSummary {
  dryRun: boolean;
  firstSync: boolean;
  pulled: string[];
  pushed: string[];
  deletedLocal: string[];
  deletedRemote: string[];
  conflicts: ConflictRecord[];
  skipped: Listing['skipped'];
  bytesTransferred: number;
}

/** A side's listing as find printed it: parsed only when something may have changed. */
export interface RawListing {
  exists: boolean;
  /** sha256 of the listing and the excludes: equal digests mean an unchanged side. */
  digest: string;
  parse(): Listing;
}

export async function listRaw(ep: Endpoint, excludes: string[]): Promise<RawListing> {
  const pruned = prunableDirs(excludes);
  const r = await ep.sh(listScript, [ep.path, ...pruned]);
  if (r.code === 3 && r.stderr.includes('NOROOT')) {
    return { exists: false, digest: 'missing', parse: () => ({ tree: new Map(), exists: false, hasSentinel: false, skipped: [] }) };
  }
  // find exits 1 when some folders could not be read; the rest of its listing is still good.
  const unreadable = [...r.stderr.matchAll(/find: '\.\/(.*)': Permission denied/g)].map((m) => m[1]!);
  if (r.code !== 0 && (r.code !== 1 || unreadable.length === 0)) throw listingFailure(ep, r.code, r.stderr);
  // find pruned those already; the rest are matched here, on both sides alike.
  const matcher = createMatcher(excludes.filter((p) => !pruned.includes(p.slice(1, -1))));
  const digest = crypto.createHash('sha256').update(r.stdout).update(JSON.stringify(excludes)).digest('hex');
  return {
    exists: true,
    digest,
    parse() {
      const listing = parseListing(r.stdout, matcher);
      return { ...listing, exists: true, skipped: [...listing.skipped, ...unreadable.map((p) => ({ path: p, why: PERMISSION_DENIED }))] };
    },
  };
}

export async function listEndpoint(ep: Endpoint, excludes: string[]): Promise<Listing> {
  return (await listRaw(ep, excludes)).parse();
}

/**
 * Digests of both listings right after a sync that changed nothing. When the next run finds the same
 * two listings, nothing has changed anywhere: it is done without parsing 100k entries or reading the archive.
 */
const quietFile = (stateDir: string) => path.join(stateDir, 'sync-quiet.json');
function readQuiet(stateDir: string, storage: string): { local: string; remote: string; skipped: Listing['skipped'] } | null {
  try {
    const q = JSON.parse(fs.readFileSync(quietFile(stateDir), 'utf8')) as { storage?: string; local?: string; remote?: string; skipped?: unknown };
    // What was skipped stays skipped while nothing changes: it is said on every run, not only the first.
    const skipped = Array.isArray(q.skipped) ? q.skipped.filter((x): x is Listing['skipped'][number] => typeof x?.path === 'string' && typeof x?.why === 'string') : [];
    return q.storage === storage && q.local && q.remote ? { local: q.local, remote: q.remote, skipped } : null;
  } catch {
    return null;
  }
}

function listingFailure(ep: Endpoint, code: number | null, stderr: string): TabulaError {
  if (ep.isRemote) {
    return describeRsyncFailure(
      { code: code === 255 ? 255 : code, signal: null, stderr, filesTransferred: 0, bytesTransferred: 0, spawnError: null },
      { home: '', storage: ep.display, cancelled: false },
    );
  }
  return new TabulaError('internal', `Could not list ${ep.display}: ${stderr.trim().split('\n')[0] ?? `exit ${code}`}`);
}

// Versions folders are named per run: time to the millisecond and the laptop, so two runs (two
// laptops, or two runs in one second) never share one and overwrite each other's saved copies.
const stampOf = (d: Date, host: string) => `${d.toISOString().replace(/[-:]/g, '')}-${host.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
// rsync skips --files-from lines that start with ';' or '#' (comments): a leading ./ keeps every name.
const nul = (paths: string[]) => Buffer.from(paths.map((p) => `./${p}\0`).join(''));
const parentsFirst = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

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
  const t0 = performance.now();
  const trace = process.env.TABULA_SYNC_TRACE ? (what: string) => console.error(`[sync] ${what} at ${(performance.now() - t0).toFixed(0)} ms`) : () => {};
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

  try {
    o.onProgress?.({ phase: 'listing', percent: 0, etaSeconds: null, bytesDone: 0, filesDone: 0, filesTotal: null, currentFile: null });
    const seen = readGenerationState(o.stateDir, o.storage.display);
    const verifyMs = (o.verifyIntervalHours ?? 24) * 3600_000;
    const verifyDue = o.verify || !seen || Date.now() - seen.verifiedAt >= verifyMs;
    // Read at most once, and not at all when nothing changed.
    let loaded: LoadedArchive | null = null;
    const archiveOnce = () => (loaded ??= loadArchive(o.stateDir, o.storage.display));
    // The home is listed while the storage lock is taken: the lock is one small round trip. With the
    // change journal, only the folders that changed are.
    const localListing = o.localChanges && !verifyDue
      ? listChangedFolders(o.home, o.excludes, o.localChanges, archiveOnce, readQuiet(o.stateDir, o.storage.display)?.local ?? null, () => listRaw(o.home, o.excludes))
      : listRaw(o.home, o.excludes);
    localListing.catch(() => {}); // awaited below
    // The idle case: the home as the last quiet run left it, and the storage's generation where this
    // laptop's last sync ended it. Every writer changes the generation before its first write, so this
    // one small read needs no lock; there is nothing to write.
    const lastQuiet = readQuiet(o.stateDir, o.storage.display);
    if (!verifyDue && lastQuiet) {
      const [generation, home] = await Promise.all([readGeneration(o.storage), localListing]);
      if (generation === seen.generation && home.digest === lastQuiet.local) {
        trace('nothing changed (generation and home)');
        return { dryRun: !!o.dryRun, firstSync: false, pulled: [], pushed: [], deletedLocal: [], deletedRemote: [], conflicts: [], skipped: [], bytesTransferred: 0 };
      }
    }
    // Another laptop syncing with the same storage finishes first: listings and transfers never mix.
    storageLock = await acquireStorageLock(o.storage, { host: o.host, waitSeconds: o.lockWaitSeconds, onWaiting: o.onWaiting, createRoot: o.storage.isRemote && !o.dryRun });
    trace('storage locked');
    // The storage is as this laptop left it when its generation is the one our last sync ended at:
    // its listing would equal the archive, so it is not walked (but in full at least once a day).
    const skipRemote = !verifyDue && seen.generation === storageLock.generation;
    const remoteListing = skipRemote ? null : listRaw(o.storage, o.excludes);
    remoteListing?.catch(() => {}); // awaited below; no unhandled rejection while the home is listed
    const rawLocal = await localListing;
    trace('home listed');
    const quiet = readQuiet(o.stateDir, o.storage.display);
    // The storage answers over the network more slowly than the home: when the home has changed, read
    // the archive and parse the home while waiting for it.
    let early: { archive: LoadedArchive; local: Listing } | null = null;
    if (quiet?.local !== rawLocal.digest) early = { archive: archiveOnce(), local: rawLocal.parse() };
    const rawRemote = await remoteListing;
    trace(rawRemote ? 'storage listed' : 'storage unchanged (generation)');
    checkCancelled();
    if (!early && (rawRemote ? rawRemote.exists && quiet?.remote === rawRemote.digest : quiet)) {
      // Listed and found as this laptop left it: the generation it reads now stands for this state.
      if (rawRemote && !o.dryRun) {
        if (!storageLock.generation) await storageLock.bump();
        writeGenerationState(o.stateDir, { storage: o.storage.display, generation: storageLock.generation, verifiedAt: Date.now() });
      }
      return { dryRun: !!o.dryRun, firstSync: false, pulled: [], pushed: [], deletedLocal: [], deletedRemote: [], conflicts: [], skipped: quiet?.skipped ?? [], bytesTransferred: 0 };
    }
    if (quiet) fs.rmSync(quietFile(o.stateDir), { force: true });
    const local = early?.local ?? rawLocal.parse();
    const archive = early?.archive ?? archiveOnce();
    // Without an archive the generation says nothing: list after all.
    const listed = rawRemote ?? (archive.first ? await listRaw(o.storage, o.excludes) : null);
    const remote: Listing = listed ? listed.parse() : { tree: asStorageSaw(archive.tree), exists: true, hasSentinel: true, skipped: [] };
    if (archive.roundedTimes) adoptListedTimes(archive.tree, local.tree, remote.tree);
    if (!local.exists) throw new TabulaError('storage-invalid', `The home folder ${o.home.path} does not exist.`);
    // What this user may not read, on either side, is neither copied nor deleted: the archive keeps
    // what it knew of it, and the rest syncs.
    const blind = [...local.skipped, ...remote.skipped].filter((x) => x.why === PERMISSION_DENIED).map((x) => x.path);
    const plan = blind.length ? planSync(...[archive.tree, local.tree, remote.tree].map((t) => withoutPaths(t, blind)) as [Tree, Tree, Tree]) : planSync(archive.tree, local.tree, remote.tree);
    trace('planned');
    checkSafety(o, archive, local, remote, plan);

    const summary: SyncSummary = {
      dryRun: !!o.dryRun,
      firstSync: archive.first,
      pulled: [],
      pushed: [],
      deletedLocal: [],
      deletedRemote: [],
      conflicts: [],
      skipped: [...local.skipped, ...remote.skipped, ...reservedInHome(local)],
      bytesTransferred: 0,
    };
    const tree = new Map(archive.tree);
    // A copy received (or sent) gets its inode and change time on that side only then: they are
    // learned from the next listing that shows the copy as it was made, so that a later edit there
    // restoring size and time (touch -r) is seen.
    let learned = 0;
    for (const [t, key, match] of [[local.tree, 'stamp', 'exact'], [listed ? remote.tree : null, 'remoteStamp', 'stored']] as const) {
      for (const [p, e] of t ?? []) {
        const a = tree.get(p);
        if (a && a.type !== 'd' && a[key] === undefined && e.stamp !== undefined && sameEntry(e, a, match)) {
          tree.set(p, { ...a, [key]: e.stamp });
          learned++;
        }
      }
    }
    const rsync = async (phase: SyncProgress['phase'], args: string[], list: string[]) => {
      checkCancelled();
      // What completed (for an archive that advances only for finished paths), and which items rsync
      // would send (the compare step): names only, to stay small on a first sync of 100k files.
      const done = new Set<string>();
      const sent = new Set<string>();
      const run = runRsync(
        [...parseableOutput, ...(o.bandwidthLimitKBps ? [`--bwlimit=${o.bandwidthLimitKBps}`] : []), ...args],
        {
          item(item) {
            done.add(item.name.replace(/\/$/, ''));
            if (/^[<>]/.test(item.change)) sent.add(item.name);
            o.onProgress?.({ phase, percent: 0, etaSeconds: null, bytesDone: 0, filesDone: done.size, filesTotal: list.length, currentFile: item.name });
          },
          progress: (p) => o.onProgress?.({ phase, percent: p.percent, etaSeconds: p.etaSeconds, bytesDone: p.bytesDone, filesDone: done.size, filesTotal: list.length, currentFile: null }),
        },
        { input: nul(list) },
      );
      current = run;
      const result = await run.done;
      current = null;
      if (!args.includes('-n')) summary.bytesTransferred += result.bytesTransferred;
      return { result, sent, done, ok: result.code === 0 };
    };

    // Both changed to the same size: rsync's checksum decides whether the content really differs.
    if (plan.compare.length) {
      o.onProgress?.({ phase: 'comparing', percent: 0, etaSeconds: null, bytesDone: 0, filesDone: 0, filesTotal: plan.compare.length, currentFile: null });
      const { result, sent } = await rsync('comparing', ['-a', '-n', '-c', '--files-from=-', '--from0', ...o.storage.rsyncOptions, o.home.rsyncRoot, o.storage.rsyncRoot], plan.compare);
      if (result.code !== 0) throw failure(result, o, cancelled);
      // With -c an item is sent ('<' to a remote, '>' locally) only when its content differs.
      for (const p of plan.compare) {
        const [l, r] = [local.tree.get(p)!, remote.tree.get(p)!];
        if (sent.has(p)) plan.conflicts.push({ path: p, keep: keepSide(l, r) });
        else if (l.mtime === r.mtime) plan.agreed.push(p);
        else plan.push.push(p); // same content: only the times differ
      }
    }

    if (o.dryRun) {
      const files = (paths: string[], t: Tree) => paths.filter((p) => t.get(p)?.type !== 'd');
      return { ...summary, pulled: files(plan.pull, remote.tree), pushed: files(plan.push, local.tree), deletedLocal: files(plan.deleteLocal, archive.tree), deletedRemote: files(plan.deleteRemote, archive.tree), conflicts: plan.conflicts.map((c) => ({ path: c.path, conflictPath: '', kept: c.keep, at: now().toISOString() })) };
    }

    const stamp = stampOf(now(), o.host);
    // Where this run leaves the storage, recorded once the archive says the same.
    const verifiedAt = listed ? Date.now() : seen!.verifiedAt;
    const settled = () => writeGenerationState(o.stateDir, { storage: o.storage.display, generation: storageLock!.generation, verifiedAt });
    const pushes = plan.push.length + plan.deleteRemote.length + plan.conflicts.length > 0;
    // rsync's temporary files live in Tabula's own areas, never beside the user's files: a run killed
    // mid-file must not leave a ".name.XXXXXX" that the next run would take for a new file. Leftovers
    // of a killed run are ours to remove (we hold the lock; each laptop has its own folder).
    const tmpRemote = `${STORAGE_AREA}/tmp/${o.host.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
    let remoteTmpReady = false;
    // Every writer changes the generation before its first write: any laptop that reads it afterwards
    // lists the storage. A storage without one gets one, so that the next quiet run can skip. The
    // same round trip empties the temporary folder when this run sends files.
    if (pushes || !remote.hasSentinel || !storageLock.generation) {
      writeGenerationState(o.stateDir, null);
      await storageLock.bump(pushes ? tmpRemote : undefined);
      remoteTmpReady = pushes;
    }
    if (!remote.hasSentinel) await writeSentinel(o, now());
    const transfers = plan.push.length + plan.pull.length + plan.deleteLocal.length + plan.deleteRemote.length + plan.conflicts.length;
    if (transfers === 0) {
      // Nothing moved: the common case, kept to two listings and (when needed) one small write.
      if (plan.agreed.length || archive.first || learned) {
        for (const p of plan.agreed) updateAgreed(tree, p, local.tree, remote.tree);
        saveArchive(o.stateDir, o.storage.display, tree);
      }
      if (remote.hasSentinel) writeFileAtomic(quietFile(o.stateDir), JSON.stringify({ storage: o.storage.display, local: rawLocal.digest, remote: listed?.digest ?? 'not listed', skipped: summary.skipped }));
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
      const mk = await o.storage.sh('rm -rf -- "$1" && mkdir -p -- "$1"', [`${o.storage.path}/${tmpRemote}`]);
      if (mk.code !== 0) throw listingFailure(o.storage, mk.code, mk.stderr);
    };

    // Phase 0: conflicts. Each is settled so that an interruption at any point loses nothing and the
    // next run does not see the same conflict again.
    let origins: Promise<OriginLookup> | null = null;
    const taken = (p: string) => local.tree.has(p) || remote.tree.has(p) || archive.tree.has(p) || exists(path.join(o.home.path, p));
    for (const c of plan.conflicts) {
      checkCancelled();
      const l = local.tree.get(c.path)!;
      const r = remote.tree.get(c.path)!;
      const older = c.keep === 'local' ? r : l;
      // The storage's version carries the name of the laptop that wrote it.
      const from = (await (origins ??= readOrigins(o.storage)))(c.path, r) ?? undefined;
      const conflictPath = freeConflictName(c.path, nsToDate(older.mtime), c.keep === 'local' ? (from ?? 'storage') : o.host, taken);
      if (c.keep === 'remote') {
        // Ours is older: step aside, take theirs, send ours under the conflict name.
        moveNoClobber(path.join(o.home.path, c.path), path.join(o.home.path, conflictPath));
        plan.pull.push(c.path);
      } else {
        // Ours is newer: bring theirs in under the conflict name, then both go up.
        const staging = path.join(o.stateDir, 'staging');
        fs.rmSync(staging, { recursive: true, force: true });
        fs.mkdirSync(staging, { recursive: true });
        const { result } = await rsync('pulling', ['-a', ...NO_SET_ID, '--files-from=-', '--from0', `--temp-dir=${tmpLocal}`, ...o.storage.rsyncOptions, o.storage.rsyncRoot, staging + '/'], [c.path]);
        if (result.code !== 0) throw failure(result, o, cancelled);
        moveNoClobber(path.join(staging, c.path), path.join(o.home.path, conflictPath));
        tree.set(c.path, received(r)); // theirs is now kept locally: the name is ours to push
        saveArchive(o.stateDir, o.storage.display, tree);
        plan.push.push(c.path);
      }
      plan.push.push(conflictPath);
      summary.conflicts.push({ path: c.path, conflictPath, kept: c.keep, at: now().toISOString(), ...(from ? { from } : {}) });
    }
    if (summary.conflicts.length) recordConflicts(o.stateDir, summary.conflicts);

    // Phase 1: storage → home, then phase 2: home → storage. Each removes first, then copies:
    // deletions, and whatever stands where a path changes type (a folder that became a file, or the
    // reverse), go in one rsync run from an empty folder with --delete-missing-args and --force, so
    // a deleted folder with contents goes in one run, whole, into the versions area. Files this laptop
    // replaces or deletes are kept in a local versions folder: a person may have edited one after the listing.
    const localVersions = path.join(o.stateDir, 'versions', stamp);
    const emptyRoot = path.join(o.stateDir, 'empty');
    const transfer = async (phase: 'pulling' | 'pushing', copy: string[], del: string[]) => {
      const [src, dst, backupDir, tmp] = phase === 'pulling' ? [o.storage, o.home, localVersions, tmpLocal] : [o.home, o.storage, `${STORAGE_AREA}/versions/${stamp}`, tmpRemote];
      const [from, there] = phase === 'pulling' ? [remote.tree, local.tree] : [local.tree, remote.tree];
      const typeChanged = copy.filter((p) => there.has(p) && from.has(p) && there.get(p)!.type !== from.get(p)!.type);
      const removals = topmost([...del, ...typeChanged]);
      if (!copy.length && !removals.length) return;
      if (phase === 'pushing') await prepareRemoteTmp();
      const backup = ['--backup', `--backup-dir=${backupDir}`];
      if (removals.length) {
        // The empty source holds the parent folders of what goes (rsync reads a listed name's parents
        // even with --no-implied-dirs, and would call them vanished); their own times are not sent.
        fs.rmSync(emptyRoot, { recursive: true, force: true });
        for (const p of removals) fs.mkdirSync(path.join(emptyRoot, path.dirname(p)), { recursive: true });
        const r = await rsync(phase, ['-a', '--files-from=-', '--from0', '--no-implied-dirs', '--delete-missing-args', '--force', ...backup, ...o.storage.rsyncOptions, emptyRoot + '/', dst.rsyncRoot], removals);
        if (!r.ok) {
          saveArchive(o.stateDir, o.storage.display, tree); // what did complete is not redone
          throw failure(r.result, o, cancelled);
        }
        for (const p of del) tree.delete(p);
        const notFolder = (p: string) => archive.tree.get(p)?.type !== 'd';
        (phase === 'pulling' ? summary.deletedLocal : summary.deletedRemote).push(...del.filter(notFolder));
      }
      if (!copy.length) return;
      // --ignore-times: the plan already chose these files; rsync's own quick check (size and whole
      // second) would skip a same-size edit made within the second. Its delta transfer still sends
      // only what differs.
      const r = await rsync(phase, ['-a', '--ignore-times', ...(phase === 'pulling' ? NO_SET_ID : []), '--files-from=-', '--from0', `--partial-dir=${PARTIAL_DIR}`, `--temp-dir=${tmp}`, ...backup, ...o.storage.rsyncOptions, src.rsyncRoot, dst.rsyncRoot], [...copy].sort(parentsFirst));
      // 24: a file vanished from the source since it was listed; the rest went, and the next run sees the change.
      const partial = r.result.code === 24;
      const completed = (p: string) => r.ok || r.done.has(p);
      for (const p of copy) if (completed(p)) tree.set(p, entryAfterCopy(p, from, o, phase === 'pushing'));
      if (phase === 'pushing') sent.push(...copy.filter((p) => completed(p) && from.get(p)?.type !== 'd'));
      // The summary speaks of files (and links), as a person counts them, not folders.
      (phase === 'pulling' ? summary.pulled : summary.pushed).push(...copy.filter(completed).filter((p) => from.get(p)?.type !== 'd'));
      if (!r.ok && !partial) {
        saveArchive(o.stateDir, o.storage.display, tree);
        throw failure(r.result, o, cancelled);
      }
    };
    const sent: string[] = [];
    await transfer('pulling', plan.pull, plan.deleteLocal);
    trace('pulled');
    await transfer('pushing', plan.push, plan.deleteRemote);
    await recordPushed(o.storage, o.stateDir, o.host, sent.map((p) => [p, tree.get(p)!]));
    trace('pushed');

    // Done with the storage: the release also reads its inode and change time of what was sent, so
    // that the next edit there, even one restoring size and time, is seen.
    for (const [p, st] of await storageLock.release(sent)) {
      const e = tree.get(p);
      if (e) tree.set(p, { ...e, remoteStamp: st });
    }
    for (const p of plan.agreed) updateAgreed(tree, p, local.tree, remote.tree);
    saveArchive(o.stateDir, o.storage.display, tree);
    settled();
    trace('archive saved');
    await pruneVersions(o);
    trace('done');
    return summary;
  } finally {
    await storageLock?.release();
    release();
  }

  function failure(result: Awaited<RsyncRun['done']>, opts: SyncOptions, wasCancelled: boolean) {
    return describeRsyncFailure(result, { home: opts.home.path, storage: opts.storage.display, cancelled: wasCancelled });
  }
}

/** A tree without the given paths and whatever is inside them. */
function withoutPaths(t: Tree, paths: string[]): Tree {
  const out: Tree = new Map();
  const set = new Set(paths);
  const hidden = (p: string) => {
    if (set.has(p)) return true;
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) if (set.has(p.slice(0, i))) return true;
    return false;
  };
  for (const [p, e] of t) if (!hidden(p)) out.set(p, e);
  return out;
}

/** Names in the home that belong to Tabula on the storage: never synced, and said so rather than left out silently. */
function reservedInHome(local: Listing): Listing['skipped'] {
  const why = "the name is Tabula's own on the storage";
  const out: Listing['skipped'] = (local.reserved ?? []).filter((p) => p === STORAGE_AREA).map((p) => ({ path: p, why }));
  if (local.hasSentinel) out.push({ path: SENTINEL, why });
  return out;
}

function updateAgreed(tree: Tree, p: string, local: Tree, remote: Tree) {
  const l = local.get(p);
  const r = remote.get(p);
  if (l) tree.set(p, r?.stamp ? { ...l, remoteStamp: r.stamp } : l);
  else tree.delete(p);
}

/** An entry received from the storage: its stamp there is the storage's; the home's comes with the next listing. */
const received = (r: Entry): Entry => ({ type: r.type, size: r.size, mtime: r.mtime, ...(r.stamp ? { remoteStamp: r.stamp } : {}) });

/** The storage as the archive says this laptop left it: its own stamps in the place a listing puts them. */
function asStorageSaw(archive: Tree): Tree {
  const t: Tree = new Map();
  for (const [p, a] of archive) t.set(p, { type: a.type, size: a.size, mtime: a.mtime, ...(a.remoteStamp ? { stamp: a.remoteStamp } : {}) });
  return t;
}


/** What the archive should remember for a path just copied: the source's entry (rsync -a keeps size and time). */
function entryAfterCopy(p: string, from: Tree, o: SyncOptions, fromHome: boolean): Entry {
  const e = from.get(p);
  if (e) return fromHome ? e : received(e);
  // A conflict copy made during this run: read it from the home.
  // The very integer a later listing reads (find prints the same nanoseconds lstat gives).
  const st = fs.lstatSync(path.join(o.home.path, p), { bigint: true });
  return { type: st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f', size: st.isDirectory() ? 0 : Number(st.size), mtime: st.mtimeNs };
}

function checkSafety(o: SyncOptions, archive: LoadedArchive, local: Listing, remote: Listing, plan: SyncPlan) {
  // The message says what was found and that nothing changed; how to go ahead anyway is for the CLI
  // and the window to say in their own terms. The files it would delete are the details.
  const refuse = (why: string, deletions: string[]) => {
    const wouldDelete = deletions.filter((p) => archive.tree.get(p)?.type !== 'd');
    const list = wouldDelete.slice(0, 50).map((p) => displayPath(path.join(o.home.path, p), o.home.path));
    return new TabulaError('sync-refused', `${why} Nothing was changed.`, { details: list });
  };
  if (!remote.exists && !o.storage.isRemote) {
    throw new TabulaError('storage-unreachable', `The storage folder ${o.storage.display} does not exist or is not mounted.`, { retryable: true });
  }
  if (archive.first || o.force) return;
  const filesIn = (t: Tree) => [...t.values()].some((e) => e.type !== 'd');
  const deletes = (n: number) => (n ? ` It would delete ${n} ${n === 1 ? 'file' : 'files'}.` : '');
  if (!remote.exists || !remote.hasSentinel) {
    throw refuse(`The storage ${o.storage.display} has no Tabula marker (${SENTINEL}): it may be empty, replaced or not mounted.${deletes(deletionShare(plan, archive.tree).local)}`, plan.deleteLocal);
  }
  const share = deletionShare(plan, archive.tree);
  if (share.archived > 0 && !filesIn(remote.tree)) throw refuse(`The storage ${o.storage.display} is empty.${deletes(share.local)}`, plan.deleteLocal);
  if (share.archived > 0 && !filesIn(local.tree)) throw refuse(`Your home folder is empty.${deletes(share.remote)}`, plan.deleteRemote);
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

/** Versions older than the retention go, on the storage and locally (checked at most once an hour). */
async function pruneVersions(o: SyncOptions) {
  const stampFile = path.join(o.stateDir, 'versions-pruned');
  const last = fs.existsSync(stampFile) ? fs.statSync(stampFile).mtimeMs : 0;
  if (Date.now() - last < 3600_000 && (o.versionsRetentionDays ?? 30) >= 1) return;
  fs.writeFileSync(stampFile, '');
  const minutes = String(Math.round((o.versionsRetentionDays ?? 30) * 24 * 60));
  const script = 'cd -- "$1" 2>/dev/null || exit 0; find . -mindepth 1 -maxdepth 1 -type d -mmin +"$2" -exec rm -rf -- {} +';
  await Promise.all([o.storage.sh(script, [`${o.storage.path}/${STORAGE_AREA}/versions`, minutes]), o.home.sh(script, [path.join(o.stateDir, 'versions'), minutes])]);
}

