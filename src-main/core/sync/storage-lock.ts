// The storage-side lock and generation record. Two laptops of one person may sync against one storage
// at the same moment; each run holds a lease on the storage (host, pid, token, expiry by the storage's
// own clock) so that their listings and transfers never interleave. `mkdir` is the atomic step: it is
// atomic on a local filesystem, on NFS and over ssh alike, and needs nothing but a POSIX shell.
//
// The generation record (.tabula/generation) changes before any run writes to the storage, under the
// lock; a laptop whose last sync ended at the generation it reads now knows that the storage is as it
// left it, and skips listing it (a read of one small file instead of a walk of the whole tree).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { TabulaError } from '../../common/errors';
import { writeFileAtomic } from '../atomic-file';
import { describeStorageScriptFailure } from '../rsync-errors';
import type { Endpoint, ShellBounds, ShellResult } from './endpoint';
import { parseStamps } from './tree';

export interface LockOwner {
  host: string;
  pid: number;
  /** Seconds by the storage's clock. */
  expires: number;
}

export interface StorageLock {
  /** The generation record read under the lock ('' when the storage has none yet). */
  generation: string;
  /** Writes a new generation (before the first write to the storage), empties `tmp` there and removes `gone` if given. */
  bump(tmp?: string, gone?: string): Promise<string>;
  /** Non-null once the lease was lost (e.g. the laptop slept past it and another took over). */
  lost(): string | null;
  /** True once one of its scripts was stopped for the storage's silence: the storage is not answering now. */
  silent(): boolean;
  /**
   * Releases the lock; first reads the storage's inode and change time of `stamped` (see Entry.stamp).
   * With `files`, the names are read from `files.names` (as rsync's --files-from) and the stamps
   * written to `files.stamps` ("<inode>:<ctime> ./<name>\0", in the names' order) instead of memory.
   */
  release(stamped?: string[], files?: { names: string; stamps: string }): Promise<Map<string, string>>;
}

export interface LockOptions {
  host: string;
  pid?: number;
  /** How long a holder that stopped renewing keeps the lock (default 120 s). */
  leaseSeconds?: number;
  /** How often the lease is renewed while held (default a quarter of the lease). */
  renewSeconds?: number;
  /** How long to wait for another laptop's run before giving up (default 120 s). */
  waitSeconds?: number;
  /** Said once while waiting, for a person. */
  onWaiting?: (reason: string) => void;
  /** Whether a missing storage folder is created (over ssh, as rsync --mkpath would). */
  createRoot?: boolean;
  /**
   * This laptop's temporary folder on the storage (from its root), removed with the lock: what a run
   * left there (a push's list of names, a killed run's leftovers) does not stay until its next push.
   */
  tmp?: string;
  /** The pid check for holders on this same host (a dead one is taken over at once). */
  isAlive?: (pid: number) => boolean;
  /** How long the storage may stay silent in one of the lock's scripts (default: the endpoint's bound). */
  silentSeconds?: number;
  /** Called once when a renewal finds the lock taken over (a run paused past its lease): stop writing now. */
  onLost?: () => void;
}

// $1 root, $2 "host pid token", $3 lease seconds, $4 an owner line known to be dead (or ''), $5 create root.
// Prints ACQUIRED/TOOKOVER and then the generation; or HELD, "<the storage's time> <when the lock
// runs out>" and the owner line ('' when it has none, '?' when it cannot be read).
const acquireScript = `
LC_ALL=C; export LC_ALL
root=$1 me=$2 lease=$3 dead=$4
[ "$5" = 1 ] && mkdir -p -- "$root" 2>/dev/null
cd -- "$root" 2>/dev/null || { echo NOROOT >&2; exit 3; }
mkdir -p .tabula || exit 5
lock=.tabula/lock now=$(date +%s)
gen() { head -c 200 .tabula/generation 2>/dev/null; echo; }
if mkdir "$lock" 2>/dev/null; then
  printf '%s %s\\n' "$me" $((now + lease)) > "$lock/owner" || exit 5
  echo ACQUIRED; gen; exit 0
fi
owner=$(head -c 300 "$lock/owner" 2>/dev/null)
# The winner writes its name right after its mkdir: give it a moment before calling it nameless.
[ -n "$owner" ] || { sleep 1; owner=$(head -c 300 "$lock/owner" 2>/dev/null); }
# Tabula's own line: "host pid token expires", a lease of at most a day. Anything else (damaged, not
# Tabula's, hostile) is a lease that cannot be read: it runs out a lease after the file last changed, so
# that a holder that renews it keeps it and a dead one does not hold the storage for ever.
exp=
case $owner in
*[!A-Za-z0-9_.\\ -]*) ;;
*) printf '%s\\n' "$owner" | grep -Eqx '[A-Za-z0-9_.-]{1,64} [0-9]{1,10} [0-9a-f]{16} [0-9]{1,12}' && exp=\${owner##* } ;;
esac
[ -n "$exp" ] && [ "$exp" -gt $((now + 86400)) ] && exp=
valid=$exp
# No name at all: a run killed between its mkdir and writing its name (releases never leave one, see
# holdScript); it is gone after a short grace, not a whole lease.
grace=$lease; [ -n "$owner" ] || grace=10
[ -n "$exp" ] || exp=$(( $(stat -c %Y "$lock/owner" 2>/dev/null || stat -c %Y "$lock" 2>/dev/null || echo "$now") + grace ))
if [ "$now" -ge "$exp" ] || { [ -n "$dead" ] && [ "$owner" = "$dead" ]; }; then
  find .tabula -maxdepth 1 -name lock.takeover -mmin +1 -exec rmdir {} + 2>/dev/null
  if mkdir "$lock.takeover" 2>/dev/null; then
    if [ "$(head -c 300 "$lock/owner" 2>/dev/null)" = "$owner" ]; then
      printf '%s %s\\n' "$me" $((now + lease)) > "$lock/owner.new" && mv -f "$lock/owner.new" "$lock/owner"
      rmdir "$lock.takeover"; echo TOOKOVER; gen; exit 0
    fi
    rmdir "$lock.takeover"
  fi
fi
shown=$owner; [ -z "$owner" ] || [ -n "$valid" ] || shown='?'
echo HELD; echo "$now $exp"; printf '%s\\n' "$shown"; exit 4
`;

// $1 root, $2 "host pid token", $3 lease, $4 action: renew | bump GEN [TMP] [GONE] | release [1] [TMP].
// Each step that can share the round trip does: a bump also empties this laptop's temporary folder on the
// storage (and removes a cut first sync's staging folder no longer wanted), and a release first prints
// the inode and change time of the names on stdin (1: what was just sent) and removes the temporary
// folder.
const holdScript = `
LC_ALL=C; export LC_ALL
cd -- "$1" 2>/dev/null || { echo NOROOT >&2; exit 3; }
lock=.tabula/lock owner=$(head -c 300 .tabula/lock/owner 2>/dev/null)
[ "\${owner% *}" = "$2" ] || { echo LOST; printf '%s\\n' "$owner"; exit 4; }
case $4 in
release)
  [ "$5" = 1 ] && xargs -0 -r sh -c 'exec find "$@" -maxdepth 0 -printf "%i:%C@ %p\\\\0" 2>/dev/null' sh
  [ -z "$6" ] || [ ! -e "$6" ] || rm -rf -- "$6"
  # Before 8e9cece the folder was .tabula/tmp/<host>: this host's old one goes too (a killed run's
  # leftovers; no run of this host can be using it while this one holds the lock), never another's.
  old=\${6#.tabula/tmp-}
  case $old in ''|.|..|*/*) ;; *) [ ! -d .tabula/tmp ] || { rm -rf -- ".tabula/tmp/$old"; rmdir .tabula/tmp 2>/dev/null; } ;; esac
  # Renamed away first, so that a run killed here never leaves a lock without a name.
  mv -f -- "$lock" ".tabula/lock.gone.$$" && rm -rf -- ".tabula/lock.gone.$$"; exit ;;
bump)
  printf '%s\\n' "$5" > .tabula/generation.new && mv -f .tabula/generation.new .tabula/generation || exit 5
  [ -z "$6" ] || { rm -rf -- "$6" && mkdir -p -- "$6"; } || exit 5
  [ -z "$7" ] || rm -rf -- "$7" || exit 5 ;;
esac
printf '%s %s\\n' "$2" $(( $(date +%s) + $3 )) > "$lock/owner.new" && mv -f "$lock/owner.new" "$lock/owner"
`;

/** "host pid token expires" as the storage holds it; hostile content gives null. */
export function parseOwner(line: string): LockOwner | null {
  const m = /^([A-Za-z0-9_.-]{1,64}) (\d{1,10}) [0-9a-f]{16} (\d{1,12})$/.exec(line.trim());
  return m ? { host: m[1]!, pid: Number(m[2]), expires: Number(m[3]) } : null;
}

/**
 * Locks this process let go of without removing them (the release failed: the storage was away). Its
 * pid is alive, so its next run would otherwise wait a whole lease for itself; the random token in
 * each makes sure only these very locks are taken, never one this process still holds.
 */
const abandoned = new Set<string>();

const safeHost = (host: string) => host.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || 'host';

function defaultIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why the lock is not ours yet; `unreadable`: the lock's owner file holds no line Tabula wrote. */
export function heldReason(owner: LockOwner | null, storageNow: number, display: string, unreadable?: { expires: number }): string {
  if (unreadable) return `The sync lock on the storage ${display} cannot be read (.tabula/lock/owner): it is damaged or was not written by Tabula. It is taken over in ${Math.max(0, unreadable.expires - storageNow)} s unless it changes.`;
  if (!owner) return `Another sync is starting on the storage ${display}.`;
  const left = Math.max(0, owner.expires - storageNow);
  return `The storage ${display} is busy: ${owner.host} (process ${owner.pid}) is syncing with it (its lease runs ${left} s more unless renewed).`;
}

export async function acquireStorageLock(ep: Endpoint, o: LockOptions): Promise<StorageLock> {
  const me = `${safeHost(o.host)} ${o.pid ?? process.pid} ${crypto.randomBytes(8).toString('hex')}`;
  const lease = o.leaseSeconds ?? 120;
  const deadline = Date.now() + (o.waitSeconds ?? 120) * 1000;
  const isAlive = o.isAlive ?? defaultIsAlive;
  let dead = '';
  let told = false;
  let nameless = 0;
  const bounds = o.silentSeconds ? { silentSeconds: o.silentSeconds } : undefined;
  for (;;) {
    const r = await ep.sh(acquireScript, [ep.path, me, String(lease), dead, o.createRoot ? '1' : '0'], undefined, undefined, bounds);
    const lines = r.stdout.toString('utf8').split('\n');
    if (r.code === 0 && (lines[0] === 'ACQUIRED' || lines[0] === 'TOOKOVER')) return holding(ep, me, lease, o.renewSeconds ?? lease / 4, cleanGeneration(lines[1] ?? ''), o.tmp ?? '', bounds, o.onLost);
    if (r.code === 3 && r.stderr.includes('NOROOT')) throw new TabulaError('storage-unreachable', `The storage folder ${ep.display} does not exist or is not mounted.`, { retryable: true });
    if (r.code !== 4 || lines[0] !== 'HELD') throw lockFailure(ep, r);
    const ownerLine = lines[2] ?? '';
    const owner = parseOwner(ownerLine);
    // A holder on this very machine whose process is gone (or a lock this process let go of) is taken
    // over at once, not after its lease.
    if (owner && owner.host === safeHost(o.host) && (!isAlive(owner.pid) || abandoned.has(ownerLine.slice(0, ownerLine.lastIndexOf(' ')))) && dead !== ownerLine) {
      dead = ownerLine;
      continue;
    }
    // A nameless lock is one being made or removed this very moment: look again before saying so.
    if (!ownerLine && !nameless++) continue;
    const [storageNow, expires] = (lines[1] ?? '').split(' ').map(Number) as [number, number];
    const unreadable = ownerLine === '?';
    const reason = heldReason(owner, storageNow, ep.display, unreadable ? { expires } : undefined);
    if (Date.now() >= deadline) throw new TabulaError('already-running', `${reason} ${unreadable ? 'Try again then.' : 'Try again when it has finished.'}`, { retryable: true });
    if (!told) o.onWaiting?.(`${reason} ${unreadable ? 'Waiting…' : 'Waiting for it to finish…'}`);
    told = true;
    await new Promise((res) => setTimeout(res, 500 + Math.random() * 1000));
  }
}

/**
 * The generation alone, without the lock: enough to know that nothing was written since this laptop's
 * last sync, as every writer changes it before its first write. One small read on the storage.
 */
export async function readGeneration(ep: Endpoint): Promise<string> {
  return cleanGeneration(await ep.readHead(`${ep.path}/.tabula/generation`));
}

function cleanGeneration(line: string): string {
  return /^[A-Za-z0-9_.-]{1,200}$/.test(line) ? line : '';
}

// ssh's failures (refused, unknown host key, key not accepted), a storage gone silent, full or refusing the write read as rsync's would.
const lockFailure = (ep: Endpoint, r: ShellResult, doing = 'take the sync lock') => describeStorageScriptFailure(r, { storage: ep.display, remote: ep.isRemote, doing });

function holding(ep: Endpoint, me: string, lease: number, renewSeconds: number, generation: string, tmp: string, bounds?: ShellBounds, onLost?: () => void): StorageLock {
  let lost: string | null = null;
  let released = false;
  // A script stopped for the storage's silence: the release is not tried (it would wait as long again);
  // the lock runs out with its lease, and this process's next run takes it over at once (abandoned).
  let silent = false;
  const act = async (action: string, extra: string[] = [], input?: Buffer, outFd?: number, inFd?: number) => {
    const r = await ep.sh(holdScript, [ep.path, me, String(lease), action, ...extra], inFd ?? input, outFd, bounds);
    if (r.stopped && 'silentSeconds' in r.stopped) silent = true;
    const out = r.stdout.toString('utf8').split('\n');
    if (r.code === 4 && out[0] === 'LOST') {
      const owner = parseOwner(out[1] ?? '');
      if (!lost) {
        lost = `The lock on the storage ${ep.display} was taken over${owner ? ` by ${owner.host} (process ${owner.pid})` : ''} while this sync was paused; it stopped so that the two runs do not mix. The next sync starts over.`;
        onLost?.();
      }
      return false;
    }
    if (r.code !== 0) throw lockFailure(ep, r, action === 'bump' ? "prepare this sync's writes" : 'keep the sync lock');
    stdout = r.stdout;
    return true;
  };
  let stdout: Buffer = Buffer.alloc(0);
  // Renewed well inside the lease; a renewal that fails for the network is retried on the next tick.
  const timer = setInterval(() => void act('renew').catch(() => {}), renewSeconds * 1000);
  timer.unref();
  const lock: StorageLock = {
    generation,
    async bump(tmp, gone) {
      const next = `${Date.now().toString(36)}-${crypto.randomBytes(8).toString('hex')}`;
      if (!(await act('bump', [next, tmp ?? '', gone ?? '']))) throw new TabulaError('already-running', lost!, { retryable: true });
      lock.generation = next;
      return next;
    },
    lost: () => lost,
    silent: () => silent,
    async release(stamped = [], files) {
      if (released) return new Map();
      released = true;
      clearInterval(timer);
      if (silent) {
        abandoned.add(me);
        return new Map();
      }
      if (files) {
        // A first sync of a million files: neither the names nor their stamps pass through memory.
        const [inFd, outFd] = [fs.openSync(files.names, 'r'), fs.openSync(files.stamps, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600)];
        try {
          // Failed or silent part way, the stamps written are not kept: the last may be cut inside a name,
          // and would then be taken for another file's. Unknown stamps fall back to size and time.
          if (!(await act('release', ['1', tmp], undefined, outFd, inFd).catch(() => false))) {
            abandoned.add(me);
            fs.ftruncateSync(outFd, 0);
          }
        } finally {
          fs.closeSync(inFd);
          fs.closeSync(outFd);
        }
        return new Map();
      }
      const input = stamped.length ? Buffer.from(stamped.map((p) => `./${p}\0`).join('')) : undefined;
      // An unreleased lock expires with its lease; unknown stamps fall back to size and time.
      const ok = await act('release', [input ? '1' : '0', tmp], input).catch(() => false);
      if (!ok) abandoned.add(me);
      return ok ? parseStamps(stdout) : new Map<string, string>();
    },
  };
  return lock;
}

/**
 * This laptop's record of where its last successful sync left the storage: the generation then, and
 * when the storage was last listed in full (the verification that catches writes made without
 * Tabula: a helpdesk, a restore tool, an admin).
 */
export interface GenerationState {
  storage: string;
  generation: string;
  verifiedAt: number;
}

const stateFile = (stateDir: string) => path.join(stateDir, 'sync-generation.json');

export function readGenerationState(stateDir: string, storage: string): GenerationState | null {
  try {
    const v = JSON.parse(fs.readFileSync(stateFile(stateDir), 'utf8')) as Partial<GenerationState>;
    if (v.storage !== storage || typeof v.generation !== 'string' || !v.generation || typeof v.verifiedAt !== 'number') return null;
    return { storage, generation: v.generation, verifiedAt: v.verifiedAt };
  } catch {
    return null;
  }
}

export function writeGenerationState(stateDir: string, state: GenerationState | null) {
  if (state) writeFileAtomic(stateFile(stateDir), JSON.stringify(state) + '\n');
  else fs.rmSync(stateFile(stateDir), { force: true });
}
