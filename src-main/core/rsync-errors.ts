// Turns rsync's exit code and stderr into a message a person can act on. "rsync exited 23" is not
// such a message; "3 files could not be read (permission denied): ~/x, ~/y, ~/z" is.
import { TabulaError } from '../common/errors';
import type { RsyncResult } from './rsync';
import { displayPath } from './paths';

export interface FailureContext {
  home: string;
  storage: string;
  /** Set when the run was cancelled on purpose. */
  cancelled: boolean;
  /** A restore of an older version rather than a backup (the default). */
  restore?: boolean;
}

const unreadableRe = /(?:send_files failed to open|opendir|readlink_stat|link_stat|readlink) "([^"]+)"(?: failed)?: (Permission denied|No such file or directory|Input\/output error)/g;

function listFiles(paths: string[], home: string): string {
  const shown = paths.slice(0, 3).map((p) => displayPath(p, home));
  return shown.join(', ') + (paths.length > 3 ? ` and ${paths.length - 3} more` : '');
}

// A restore moves each file it replaces into its own backup folder first (rsync --backup-dir), so a
// restore cut part-way has lost nothing, but (a folder's restore) may have replaced some files already.
const RESTORE_KEPT = 'Any file it had already replaced in your home is kept aside in Tabula\'s restore backups; nothing was lost.';

/** Why ssh refused to log in, in words; null when it did not refuse. */
export function loginRefused(r: RsyncResult): string | null {
  if (!/Permission denied \(publickey|Host key verification failed|Too many authentication failures/.test(r.stderr)) return null;
  return /Host key verification failed/.test(r.stderr) ? 'the server\'s identity has changed or is unknown' : 'the key was not accepted';
}

/** Why the connection to the other side failed, in words; null when the failure was not the connection's. */
export function connectionFailed(r: RsyncResult): string | null {
  const net = /(Connection refused|Connection timed out|No route to host|Network is unreachable|Could not resolve hostname[^\n]*|Connection reset by peer|Broken pipe|connection unexpectedly closed)/.exec(r.stderr);
  if (!(r.code === 255 || r.code === 12 || r.code === 10 || r.code === 35 || r.code === 30 || net)) return null;
  return net ? net[1]!.replace(/^Could not resolve hostname.*/, 'the server name could not be found').toLowerCase() : 'the connection failed';
}

export function describeRsyncFailure(r: RsyncResult, ctx: FailureContext): TabulaError {
  const { stderr } = r;
  if (r.spawnError) {
    return r.spawnError.code === 'ENOENT'
      ? new TabulaError('rsync-missing', 'rsync is not installed on this computer, so Tabula cannot copy files. Ask your helpdesk to install it.')
      : new TabulaError('internal', `Tabula could not start rsync (${r.spawnError.message}).`);
  }
  // The connection is up but nothing came from the other side for that long: a storage whose rsync
  // hangs (a dead disk, a stopped process), stopped by runRsync's watch (stallSeconds) or by rsync's --timeout.
  const silent = r.stalledSeconds ?? Number(/io timeout after (\d+) seconds/.exec(stderr)?.[1] ?? (r.code === 30 ? 0 : NaN));
  if (!ctx.cancelled && !Number.isNaN(silent)) {
    const seconds = silent ? ` (nothing came back for ${silent} seconds)` : '';
    const after = ctx.restore ? `so the restore stopped. ${RESTORE_KEPT} Try again once the storage answers.` : 'so the backup stopped there. Files already copied are kept; the next backup continues from there.';
    return new TabulaError('storage-unreachable', `The storage ${ctx.storage} stopped answering${seconds}, ${after}`, { retryable: true });
  }
  if (ctx.cancelled || r.code === 20 || r.signal) {
    const what = ctx.restore ? `The restore was stopped before it finished. ${RESTORE_KEPT}` : 'The backup was stopped before it finished. Files already copied are kept; the next backup continues from there.';
    return new TabulaError('cancelled', what, { retryable: true });
  }
  if (r.code === 11 || /No space left on device|Disk quota exceeded/.test(stderr)) {
    return new TabulaError('storage-full', `The storage ${ctx.storage} is full, so the backup could not finish. Free some space there or ask your helpdesk for more.`, { retryable: true });
  }
  const login = loginRefused(r);
  if (login) return new TabulaError('storage-auth-failed', `The storage ${ctx.storage} refused Tabula's login (${login}).`);
  const why = connectionFailed(r);
  if (why) return new TabulaError('storage-unreachable', `The storage ${ctx.storage} cannot be reached right now (${why}).`, { retryable: true });
  const unreadable: Record<string, string[]> = {};
  for (const m of stderr.matchAll(unreadableRe)) (unreadable[m[2]!.toLowerCase()] ??= []).push(m[1]!);
  const kinds = Object.entries(unreadable);
  if (kinds.length) {
    const total = kinds.reduce((n, [, l]) => n + l.length, 0);
    const why = kinds.map(([reason, l]) => `${reason} for ${listFiles(l, ctx.home)}`).join('; ');
    return new TabulaError('files-unreadable', `${total} ${total === 1 ? 'file' : 'files'} could not be backed up (${why}). Everything else was copied.`, {
      retryable: true,
      details: kinds.flatMap(([, l]) => l.map((p) => displayPath(p, ctx.home))),
    });
  }
  if (/(mkdir|mkstemp|rename|open) "[^"]*" failed: Permission denied|Permission denied \(13\)/.test(stderr)) {
    return new TabulaError('storage-permission', `Tabula may not write to the storage ${ctx.storage} (permission denied). Ask your helpdesk to check the folder's permissions.`);
  }
  if (/change_dir#?\d* "[^"]*" failed: No such file or directory|No such file or directory \(2\)/.test(stderr)) {
    return new TabulaError('storage-unreachable', `The storage folder ${ctx.storage} does not exist or is not mounted.`, { retryable: true });
  }
  const firstLine = stderr.split('\n').find((l) => l.trim())?.replace(/^rsync(?: error)?: /, '') ?? 'no message';
  return new TabulaError('internal', `The backup failed (rsync error ${r.code}: ${firstLine.trim()}).`, { retryable: true });
}

/**
 * A script Tabula runs on the storage failed (the lock, the mark before the first write, rsync's
 * temporary folder): the connection, the storage's silence and a full disk read as rsync's failures
 * do, and a storage that refuses the write says so. `doing` ("take the sync lock") for anything else.
 */
export function describeStorageScriptFailure(
  r: { code: number | null; stderr: string; stopped?: { silentSeconds: number } | { maxBytes: number } },
  ctx: { storage: string; remote: boolean; doing: string },
): TabulaError {
  const stalledSeconds = r.stopped && 'silentSeconds' in r.stopped ? r.stopped.silentSeconds : undefined;
  if ((ctx.remote && r.code === 255) || stalledSeconds || /No space left on device|Disk quota exceeded/.test(r.stderr)) {
    return describeRsyncFailure({ code: r.code, signal: null, stderr: r.stderr, filesTransferred: 0, bytesTransferred: 0, spawnError: null, stalledSeconds }, { home: '', storage: ctx.storage, cancelled: false });
  }
  const refused = /Permission denied|Read-only file system|Operation not permitted/.exec(r.stderr);
  if (refused) return new TabulaError('storage-permission', `Tabula may not write to the storage ${ctx.storage} (${refused[0].toLowerCase()}). Ask your helpdesk to check the folder's permissions.`);
  const first = r.stderr.trim().split('\n')[0];
  return new TabulaError('storage-permission', `Could not ${ctx.doing} on the storage ${ctx.storage}${first ? `: ${first}` : ` (exit ${r.code})`}.`, { retryable: true });
}
