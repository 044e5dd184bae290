// The home's change journal: which folders changed since the last sync, so that an idle run lists only
// those instead of statting 100,000 files. Fed by inotify through `inotifywait -m -r` (inotify-tools):
// Node's fs.watch reports no queue overflow (a lost event would be a lost edit) and, recursive on
// Linux, puts a watch on every file; inotifywait watches folders only and prints the kernel's
// Q_OVERFLOW. fanotify would watch a whole file system with one mark, but only with CAP_SYS_ADMIN:
// the agent runs as the user, where fanotify offers nothing inotify does not.
//
// Whatever the journal cannot vouch for is a full scan: the first run after the agent starts, a queue
// overflow, a watch that could not be placed (the per-user limit), a file system unmounted in the
// home, a watcher that died. It does not see a file written through a hard link from outside the home
// or through a shared memory map, nor a file system mounted over a folder: the full listing at
// `backup.verifyHours` does.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** Folders of the home (relative; '' is the home itself) to list again; null: list the whole home. */
export interface LocalChanges {
  /** Folders whose own entries changed: each is listed one level deep. */
  folders: string[];
  /** Folders that appeared whole (made or moved in): listed with everything they hold. */
  trees: string[];
}

export interface TakenChanges {
  changes: LocalChanges | null;
  /**
   * The run that used them did not finish: the next run lists the whole home. (Rarely needed, and
   * simpler to trust than what a half-finished run left in the archive.)
   */
  failed(): void;
}

export interface ChangeJournal {
  /** What changed since the last take, once every event up to this moment has been read. */
  take(): Promise<TakenChanges>;
  /**
   * What changed since the last successful take, without taking it: for counting what the storage does
   * not have yet (the window's "12 changes queued") without listing the whole home. Null when the
   * journal cannot vouch for the home.
   */
  peek(): Promise<LocalChanges | null>;
  /** Called with each changed path (home-relative) as it is seen: the agent's trigger for a sync. */
  onChanged(listener: (rel: string) => void): () => void;
  /** The inotifywait process (for diagnostics and tests), or null when none runs. */
  readonly watcherPid: number | null;
  /** Why the journal cannot vouch for the home (every run lists it in full), or null. */
  readonly problem: string | null;
  close(): void;
}

export interface ChangeJournalOptions {
  home: string;
  /** Folders of the home never synced (absolute): not watched, which also spares inotify watches. */
  ignore: string[];
  /** A private folder for the journal's own marker file (the agent's runtime folder). */
  workDir: string;
  reportProblem?: (message: string) => void;
  /** Past this many changed folders a run lists the whole home anyway (a scan is cheaper than the list). */
  maxFolders?: number;
}

const EVENTS = ['create', 'delete', 'modify', 'attrib', 'moved_from', 'moved_to', 'unmount', 'q_overflow'];
/** How long a flush may take before the journal is taken for broken (a burst of events is read first). */
const FLUSH_TIMEOUT_MS = 120_000;
/** A journal that failed (watch limit, watcher died) tries again after this long; until then runs list in full. */
const RETRY_MS = 3600_000;

export function createChangeJournal(o: ChangeJournalOptions): ChangeJournal {
  const maxFolders = o.maxFolders ?? 20_000;
  const flushDir = path.join(o.workDir, 'change-journal');
  const homePrefix = o.home.endsWith('/') ? o.home : o.home + '/';
  const listeners = new Set<(rel: string) => void>();
  let child: ChildProcess | null = null;
  let established = false;
  let problem: string | null = null;
  let startedAt = 0;
  let closed = false;
  // Everything is unknown until the watches are in place: the first run lists the whole home.
  let full = true;
  // Whether `full` is for lack of knowledge (not only because a run failed: then `carried` knows).
  let unknown = true;
  // The folders of runs that took them and failed. Their next run lists the whole home all the same;
  // a peek still needs only these.
  let carried: LocalChanges = { folders: [], trees: [] };
  let folders = new Set<string>();
  let trees = new Set<string>();
  let flushes = 0;
  /** Flushes waiting for their marker; called with false when the marker may be lost (overflow, failure). */
  const waiting = new Map<string, (caughtUp: boolean) => void>();
  // Settled once the watches are in place or the watcher failed: a take waits for it (the first run
  // after a start lists in full anyway, but the one after it can then rely on the journal).
  let settle: () => void = () => {};
  let ready = Promise.resolve();

  const fail = (why: string) => {
    full = unknown = true;
    if (problem === null) o.reportProblem?.(`Changes in the home are not tracked (${why}); every sync lists the whole home.`);
    problem = why;
    established = false;
    settle();
    const c = child;
    child = null;
    if (c && c.exitCode === null && c.signalCode === null) c.kill();
    for (const done of waiting.values()) done(false);
    waiting.clear();
  };

  const mark = (folder: string) => {
    folders.add(folder);
    if (folders.size + trees.size > maxFolders) full = unknown = true;
  };

  function onEvent(record: string) {
    const sp = record.indexOf(' ');
    const events = record.slice(0, sp).split(',');
    const where = record.slice(sp + 1);
    if (events.includes('Q_OVERFLOW')) {
      full = unknown = true; // events were dropped: which folders changed is not known
      // A flush's marker may have been dropped with them: it would be waited for in vain.
      for (const done of waiting.values()) done(false);
      waiting.clear();
      return;
    }
    if (where.startsWith(flushDir + '/')) {
      waiting.get(where)?.(true);
      waiting.delete(where);
      return;
    }
    if (events.includes('UNMOUNT')) {
      full = unknown = true; // what was on it is gone from the home, and no folder says so
      return;
    }
    if (where !== o.home + '/' && !where.startsWith(homePrefix)) return;
    const self = where.endsWith('/'); // the event is on a watched folder itself (its own attributes)
    const rel = (self ? where.slice(0, -1) : where).slice(homePrefix.length);
    if (self) {
      if (rel) mark(parentOf(rel)); // a folder's own entry lives in its parent's listing
    } else {
      mark(parentOf(rel));
      if (events.includes('ISDIR') && (events.includes('CREATE') || events.includes('MOVED_TO'))) trees.add(rel);
    }
    if (rel) for (const l of listeners) l(rel);
  }

  function start() {
    startedAt = Date.now();
    established = false;
    full = unknown = true;
    ready = new Promise<void>((resolve) => (settle = resolve));
    fs.mkdirSync(flushDir, { recursive: true, mode: 0o700 });
    // -P: symlinks are entries, never followed (as in the listing). Folders never synced are left
    // unwatched with @ (they may hold more folders than the rest of the home: caches, the storage).
    const args = ['-m', '-r', '-P', ...EVENTS.flatMap((e) => ['-e', e]), '--format', '%e %w%f%0', '--no-newline', o.home, flushDir, ...o.ignore.map((p) => `@${p}`)];
    let c: ChildProcess;
    try {
      c = spawn('inotifywait', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      return fail(`inotifywait could not start: ${(err as Error).message}`);
    }
    child = c;
    let out = '';
    c.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      let start = 0;
      for (let end = out.indexOf('\0'); end >= 0; end = out.indexOf('\0', start)) {
        onEvent(out.slice(start, end));
        start = end + 1;
      }
      out = out.slice(start);
    });
    let err = '';
    c.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
      let end: number;
      while ((end = err.indexOf('\n')) >= 0) {
        const line = err.slice(0, end).trim();
        err = err.slice(end + 1);
        if (child !== c || !line || line.startsWith('Setting up watches')) continue;
        if (line === 'Watches established.') {
          established = true;
          problem = null;
          settle();
          continue;
        }
        // "upper limit on inotify watches reached", "Couldn't watch new directory …": a folder is
        // unwatched from now on, and its changes would go unseen.
        fail(/upper limit/.test(line) ? 'the limit of inotify watches (fs.inotify.max_user_watches) is reached' : line);
      }
    });
    c.on('error', (e) => child === c && fail((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'inotifywait is not installed (package inotify-tools)' : e.message));
    c.on('exit', (code, signal) => child === c && !closed && fail(`inotifywait stopped (${signal ?? `exit ${code}`})`));
  }

  /** Resolves once every event queued before this call has been read (inotify keeps one order per instance). */
  function flush(): Promise<boolean> {
    if (!child || !established) return Promise.resolve(false);
    const file = path.join(flushDir, `flush-${++flushes}`);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        waiting.delete(file);
        fail('inotifywait did not answer');
        resolve(false);
      }, FLUSH_TIMEOUT_MS);
      waiting.set(file, (caughtUp) => {
        clearTimeout(timer);
        fs.rmSync(file, { force: true });
        resolve(caughtUp && child !== null && established);
      });
      try {
        fs.writeFileSync(file, '');
      } catch (e) {
        waiting.delete(file);
        clearTimeout(timer);
        fail(`the journal's marker could not be written: ${(e as Error).message}`);
        resolve(false);
      }
    });
  }

  start();

  return {
    async take() {
      if (!child && !closed && Date.now() - startedAt >= RETRY_MS) start();
      await ready;
      const caughtUp = await flush();
      const taken = { full: full || !caughtUp, unknown: unknown || !caughtUp, folders, trees, carried };
      // From here on, events belong to the next run.
      full = unknown = !caughtUp;
      folders = new Set();
      trees = new Set();
      carried = { folders: [], trees: [] };
      return {
        changes: taken.full ? null : { folders: [...taken.folders], trees: [...taken.trees] },
        failed() {
          full = true;
          if (taken.unknown) unknown = true;
          carried = { folders: [...carried.folders, ...taken.carried.folders, ...taken.folders], trees: [...carried.trees, ...taken.carried.trees, ...taken.trees] };
        },
      };
    },
    async peek() {
      if (!child || !established || unknown) return null;
      if (!(await flush()) || unknown) return null;
      return { folders: [...new Set([...carried.folders, ...folders])], trees: [...new Set([...carried.trees, ...trees])] };
    },
    onChanged(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    get watcherPid() {
      return child?.pid ?? null;
    },
    get problem() {
      return problem;
    },
    close() {
      closed = true;
      settle();
      const c = child;
      child = null;
      c?.kill();
      for (const done of waiting.values()) done(false);
      waiting.clear();
      fs.rmSync(flushDir, { recursive: true, force: true });
    },
  };
}

const parentOf = (rel: string) => {
  const slash = rel.lastIndexOf('/');
  return slash < 0 ? '' : rel.slice(0, slash);
};
