// The storage's marker (.tabula-storage): a storage without it may be empty, replaced or not mounted,
// and a sync that would delete from it is refused (see the engine's safety checks).
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../atomic-file';
import { describeRsyncFailure } from '../rsync-errors';
import { IO_TIMEOUT_SECONDS, runRsync } from '../rsync';
import type { Endpoint } from './endpoint';
import { SENTINEL } from './tree';

export async function writeSentinel(o: { home: Endpoint; storage: Endpoint; stateDir: string; host: string; ioTimeoutSeconds?: number }, at: Date) {
  const tmp = path.join(o.stateDir, 'sentinel');
  fs.mkdirSync(tmp, { recursive: true });
  writeFileAtomic(path.join(tmp, SENTINEL), JSON.stringify({ createdAt: at.toISOString(), createdBy: o.host }) + '\n');
  // Watched as the sync's own transfers are: a storage whose rsync hangs must not hold the run for ever.
  const timeout = o.ioTimeoutSeconds ?? IO_TIMEOUT_SECONDS;
  const run = runRsync(['-a', '--mkpath', `--timeout=${timeout}`, ...o.storage.rsyncOptions, `${tmp}/${SENTINEL}`, o.storage.rsyncRoot], {}, { stallSeconds: timeout });
  const result = await run.done;
  if (result.code !== 0) throw describeRsyncFailure(result, { home: o.home.path, storage: o.storage.display, cancelled: false });
}

