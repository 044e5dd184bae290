// One sync at a time on this laptop (the agent, `tabula sync` by hand, a login hook): a lock file in
// the state folder holding the owner's process id. The storage's own lock is storage-lock.ts.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { TabulaError } from '../../common/errors';

/**
 * Cross-process lock: one sync at a time, and a lock whose owner died is taken over. A restore holds it
 * too (`what`): a sync run by hand meanwhile could put the storage's copy back over the restored one.
 */
export function acquireLock(stateDir: string, what: 'sync' | 'restore' = 'sync'): () => void {
  const file = path.join(stateDir, 'sync.lock');
  fs.mkdirSync(stateDir, { recursive: true });
  // The pid, then what tells this lock from any other the same pid ever took, then what holds it.
  const mine = `${process.pid} ${crypto.randomUUID()} ${what}`;
  if (!take(file, mine)) throw new TabulaError('already-running', 'Another sync is starting.', { retryable: true });
  removeHalfMade(file);
  // Only our own lock goes: one taken over from us (it cannot be, while we live) stays.
  return () => read(file) === mine && fs.rmSync(file, { force: true });
}

/**
 * Creates `file` holding `mine`, or takes it over from an owner that died. Node has no flock, so:
 * - it is created whole or not at all: written under a name of our own, then link()ed to its name,
 *   which fails if the name exists (a file created empty and then written reads as nobody's lock in
 *   between, and would be taken over from a live owner);
 * - two processes that both found it dead must not both remove it: the second would remove the lock
 *   the first has just taken. Removing is done only while holding `file.takeover` (taken the same
 *   way, so exactly one process holds it) and only if `file` still holds what was found dead; a
 *   lock taken meanwhile is left alone. A process that died while taking over leaves the
 *   `.takeover` file with its dead pid: it is taken over in turn, the same way.
 */
function take(file: string, mine: string, depth = 0): boolean {
  for (let attempt = 0; attempt < 3; attempt++) {
    if (create(file, mine)) return true;
    const found = read(file);
    if (found === null) continue; // released meanwhile
    const owner = Number.parseInt(found, 10);
    // Our own pid in it is a lock left before a reboot by a process that had this pid (the state
    // folder outlives boots), not one we hold: within one agent every run already waits its turn
    // (the sync service's one Exclusive, also for the reimage guard's dry run), and one process
    // runs one agent. Counting it as held would stop this laptop's syncs for good.
    if (owner > 0 && owner !== process.pid && isAlive(owner)) {
      const restore = found.split(' ')[2] === 'restore';
      throw new TabulaError('already-running', restore ? `A restore is running (process ${owner}); sync again once it has finished.` : `Another sync is running (process ${owner}).`, { retryable: true });
    }
    const guard = `${file}.takeover`;
    if (depth > 2 || !take(guard, mine, depth + 1)) return false;
    try {
      if (read(file) === found) fs.rmSync(file, { force: true }); // its owner is gone
    } finally {
      if (read(guard) === mine) fs.rmSync(guard, { force: true });
    }
  }
  return false;
}

function create(file: string, content: string): boolean {
  const tmp = `${file}.${process.pid}-${crypto.randomUUID()}`;
  fs.writeFileSync(tmp, content, { mode: 0o600 });
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * The files {@link create} writes before linking them in, left by a process killed in between: each
 * names its process, and only those of a process that has ended are removed (a live one is mid-take).
 */
function removeHalfMade(file: string) {
  const base = path.basename(file);
  const own = new RegExp(`^${base.replace(/\./g, '\\.')}(?:\\.takeover)?\\.(\\d+)-[0-9a-f-]{36}$`);
  for (const name of fs.readdirSync(path.dirname(file))) {
    const pid = Number(own.exec(name)?.[1] ?? 0);
    if (pid > 0 && pid !== process.pid && !isAlive(pid)) fs.rmSync(path.join(path.dirname(file), name), { force: true });
  }
}

function read(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
