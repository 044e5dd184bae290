// The storage's marker (.tabula-storage): a storage without it may be empty, replaced or not mounted,
// and a sync that would delete from it is refused (see the engine's safety checks).
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../atomic-file';
import { describeRsyncFailure } from '../rsync-errors';
import { runRsync } from '../rsync';
import type { Endpoint } from './endpoint';
import { SENTINEL } from './tree';

export async function writeSentinel(o: { home: Endpoint; storage: Endpoint; stateDir: string; host: string }, at: Date) {
  const tmp = path.join(o.stateDir, 'sentinel');
  fs.mkdirSync(tmp, { recursive: true });
  writeFileAtomic(path.join(tmp, SENTINEL), JSON.stringify({ createdAt: at.toISOString(), createdBy: o.host }) + '\n');
  const run = runRsync(['-a', '--mkpath', ...o.storage.rsyncOptions, `${tmp}/${SENTINEL}`, o.storage.rsyncRoot]);
  const result = await run.done;
  if (result.code !== 0) throw describeRsyncFailure(result, { home: o.home.path, storage: o.storage.display, cancelled: false });
}

