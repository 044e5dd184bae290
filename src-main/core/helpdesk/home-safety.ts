// "Are there changes in the home that are not on the storage?": asked before every reimage.
// HomeSafety is the seam: for now it is answered from the backup's own view (a dry run of the same
// rsync the backup runs, plus whether a backup is running or failed); the home-sync engine replaces
// this implementation with its journal and queue.
import fs from 'node:fs';
import path from 'node:path';
import type { HomeSafetyReport } from '../../common/contract-image';
import { defaultExcludes } from '../backup';
import type { TabulaConfig } from '../config';
import type { Paths } from '../paths';
import { runRsync } from '../rsync';
import { parseStorageUrl, rsyncTarget, sshCommand } from '../storage-url';

export interface HomeSafety {
  unsyncedChanges(): Promise<HomeSafetyReport>;
}

const LIST_LIMIT = 200;

export function createRsyncDryRunHomeSafety(deps: { paths: Paths; getConfig: () => TabulaConfig; backupRunning: () => boolean; rsyncPath?: string }): HomeSafety {
  return {
    async unsyncedChanges() {
      const config = deps.getConfig();
      const queued = deps.backupRunning() ? 1 : 0;
      let storage;
      try {
        storage = parseStorageUrl(config.storage.url);
      } catch (err) {
        return { count: 0, paths: [], queued, unknownReason: (err as Error).message };
      }
      if (storage.kind === 'local' && !fs.existsSync(storage.path)) {
        // The built-in folder before the first backup: everything is unsynced (the dry run lists it).
        // A configured NAS folder that is missing is most likely not mounted: no answer.
        if (storage.path !== path.join(deps.paths.dataDir, 'storage')) return { count: 0, paths: [], queued, unknownReason: `The storage ${storage.display} is not reachable, so Tabula cannot tell whether your files are safe.` };
      }
      const paths: string[] = [];
      let count = 0;
      const run = runRsync(
        [
          '-a',
          '--dry-run',
          '--no-D',
          '--out-format=%i|%n|%l',
          ...(storage.kind === 'ssh' ? ['-e', sshCommand(storage, config.storage.sshOptions, config.storage.connectTimeoutSeconds)] : []),
          ...[...defaultExcludes(deps.paths, storage), ...config.backup.excludes].map((p) => `--exclude=${p}`),
          '--',
          `${deps.paths.home}/`,
          rsyncTarget(storage),
        ],
        {
          item(item) {
            if (!/^[<>]f/.test(item.change)) return;
            count++;
            if (paths.length < LIST_LIMIT) paths.push(`~/${item.name}`);
          },
        },
        { rsyncPath: deps.rsyncPath },
      );
      const r = await run.done;
      if (r.code !== 0 && r.code !== 23 && r.code !== 24) {
        return { count, paths, queued, unknownReason: `The storage ${storage.display} could not be compared with your home (rsync exit ${r.code}), so Tabula cannot tell whether your files are safe.` };
      }
      return { count, paths, queued, unknownReason: null };
    },
  };
}
