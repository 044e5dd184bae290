// One sync at a time on this laptop (the agent, `tabula sync` by hand, a login hook): a lock file in
// the state folder holding the owner's process id. The storage's own lock is storage-lock.ts.
import fs from 'node:fs';
import path from 'node:path';
import { TabulaError } from '../../common/errors';

/** Cross-process lock: one sync at a time, and a lock whose owner died is taken over. */
export function acquireLock(stateDir: string): () => void {
  const file = path.join(stateDir, 'sync.lock');
  fs.mkdirSync(stateDir, { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(fs.readFileSync(file, 'utf8'));
      // Our own pid in it is a lock left before a reboot by a process that had this pid (the state
      // folder outlives boots), not one we hold: within one agent every run already waits its turn
      // (the sync service's one Exclusive, also for the reimage guard's dry run), and one process
      // runs one agent. Counting it as held would stop this laptop's syncs for good.
      if (owner && owner !== process.pid && isAlive(owner)) {
        throw new TabulaError('already-running', `Another sync is running (process ${owner}).`, { retryable: true });
      }
      fs.rmSync(file, { force: true }); // its owner is gone
    }
  }
  throw new TabulaError('already-running', 'Another sync is starting.', { retryable: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

