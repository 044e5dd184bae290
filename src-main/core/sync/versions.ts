// Older versions on the storage (.tabula/versions/<stamp>/<path>, filled by rsync --backup-dir) and
// restoring one of them into the home or another folder.
import fs from 'node:fs';
import path from 'node:path';
import { TabulaError } from '../../common/errors';
import { displayPath } from '../paths';
import { IO_TIMEOUT_SECONDS, runRsync } from '../rsync';
import { describeRsyncFailure } from '../rsync-errors';
import type { Endpoint } from './endpoint';
import { STORAGE_AREA } from './tree';

export interface FileVersion {
  /** When this content was replaced or deleted (it was current until then); null for the current copy. */
  replacedAt: string | null;
  stamp: string | null;
}

// No versions area yet (nothing replaced so far) still lists the storage's current copy.
const listVersionsScript = [
  'if cd -- "$1" 2>/dev/null; then for d in */; do d=${d%/}; if [ -e "$d/$2" ] || [ -L "$d/$2" ]; then printf "%s\\0" "$d"; fi; done; fi',
  'if [ -e "$3" ] || [ -L "$3" ]; then printf "current\\0"; fi',
].join('\n');

/** `20261122T093000.123Z-lap1` → `2026-11-22T09:30:00.123Z` */
const stampToIso = (s: string) => s.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)(\.\d+)?Z.*$/, '$1-$2-$3T$4:$5:$6$7Z');

/** A relative path inside the home, refused if it could point anywhere else. */
export function homeRelative(p: string, home: string): string {
  const rel = path.isAbsolute(p) ? path.relative(home, p) : p.replace(/^~\//, '');
  const norm = path.posix.normalize(rel);
  if (!norm || norm === '.' || norm.startsWith('../') || norm === '..' || path.isAbsolute(norm)) {
    throw new TabulaError('invalid-argument', `${p} is not inside your home folder.`);
  }
  return norm.replace(/\/$/, '');
}

/** Newest first; the current copy on the storage (if any) comes first of all. */
export async function listVersions(storage: Endpoint, rel: string, opts: { /** How long the storage may stay silent (default: the endpoint's bound); tests make it short. */ ioTimeoutSeconds?: number } = {}): Promise<FileVersion[]> {
  const r = await storage.sh(listVersionsScript, [`${storage.path}/${STORAGE_AREA}/versions`, rel, `${storage.path}/${rel}`], undefined, undefined, opts.ioTimeoutSeconds ? { silentSeconds: opts.ioTimeoutSeconds } : undefined);
  if (r.stopped && 'silentSeconds' in r.stopped) {
    throw new TabulaError('storage-unreachable', `The storage ${storage.display} stopped answering (nothing came back for ${r.stopped.silentSeconds} seconds), so its versions could not be listed. Try again once it answers.`, { retryable: true });
  }
  if (r.code !== 0) throw new TabulaError('storage-unreachable', `Could not list the versions on ${storage.display}.`, { retryable: true });
  const names = r.stdout.toString('utf8').split('\0').filter(Boolean);
  const stamps = names.filter((n) => n !== 'current').sort().reverse();
  return [
    ...(names.includes('current') ? [{ replacedAt: null, stamp: null }] : []),
    ...stamps.map((stamp) => ({ stamp, replacedAt: stampToIso(stamp) })),
  ];
}

/**
 * The version that was current at `at`: the oldest copy replaced after that time, or the storage's
 * current copy when nothing replaced it since. Without `at`, the most recent older version.
 */
export function pickVersion(versions: FileVersion[], at?: Date): FileVersion | null {
  const older = versions.filter((v) => v.stamp !== null);
  if (!at) return older[0] ?? null;
  const after = older.filter((v) => Date.parse(v.replacedAt!) > at.getTime());
  return after.at(-1) ?? versions.find((v) => v.stamp === null) ?? null;
}

/**
 * A restore into the home never writes through a symlink that leads out of it: a link that arrived
 * with the sync (`~/Documents` → `/somewhere/else`) must not turn a restore into a write elsewhere.
 */
function refuseLinkOutOfHome(home: string, dest: string) {
  const rel = path.relative(home, dest);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return; // a folder outside the home, named by the person
  const realHome = fs.realpathSync(home);
  let p = home;
  for (const part of rel.split(path.sep)) {
    p = path.join(p, part);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return; // does not exist yet: created below, as a real folder
    }
    if (!st.isSymbolicLink()) continue;
    let target: string;
    try {
      target = fs.realpathSync(p);
    } catch {
      target = p; // a dangling link: rsync replaces it, nothing is written through it
    }
    if (target !== realHome && !target.startsWith(realHome + path.sep)) {
      throw new TabulaError('invalid-argument', `Not restored: ${displayPath(p, home)} is a link to ${target}, outside your home folder. Remove the link or restore with --to a folder of your choice.`);
    }
  }
}

export async function restoreVersion(opts: {
  storage: Endpoint;
  home: string;
  rel: string;
  version: FileVersion;
  /** A folder to restore into instead of the original place. */
  to?: string;
  /** Where a file replaced in the home is kept. */
  localBackupDir: string;
  /** How long the storage may stay silent (default {@link IO_TIMEOUT_SECONDS}); tests make it short. */
  ioTimeoutSeconds?: number;
}): Promise<string> {
  const { storage, rel, version } = opts;
  const srcPath = version.stamp ? `${STORAGE_AREA}/versions/${version.stamp}/${rel}` : rel;
  const src = storage.rsyncRoot + srcPath;
  // A relative --to is inside the home (the agent's working folder means nothing to the person).
  const dest = opts.to ? path.join(path.resolve(opts.home, opts.to), path.basename(rel)) : path.join(opts.home, rel);
  refuseLinkOutOfHome(opts.home, dest);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  // A trailing slash on both copies a folder's contents onto the folder; a file is copied as itself.
  const isDir = (await storage.sh('[ -d "$1" ]', [`${storage.path}/${srcPath}`])).code === 0;
  // What arrives from the storage never runs with another user's or group's rights (as in a sync: engine.ts NO_SET_ID);
  // a storage that hangs ends the restore, which would otherwise hold the sync's queue for ever.
  const timeout = opts.ioTimeoutSeconds ?? IO_TIMEOUT_SECONDS;
  const args = ['-a', '--chmod=ug-s', `--timeout=${timeout}`, '--backup', `--backup-dir=${opts.localBackupDir}`, ...storage.rsyncOptions, isDir ? src + '/' : src, isDir ? dest + '/' : dest];
  const result = await runRsync(args, {}, { stallSeconds: timeout }).done;
  if (result.stalledSeconds) await storage.close(); // its kept connection holds the hung session: the next run opens a fresh one
  if (result.code !== 0) throw describeRsyncFailure(result, { home: opts.home, storage: storage.display, cancelled: false, restore: true });
  return dest;
}
