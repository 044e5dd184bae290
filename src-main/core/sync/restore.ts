// Older versions of a file from the storage's versions area, and bringing one back (the copy it
// replaces in the home is kept aside in the state folder, never lost).
import path from 'node:path';
import { TabulaError } from '../../common/errors';
import { displayPath } from '../paths';
import type { Endpoint } from './endpoint';
import { homeRelative, listVersions, pickVersion, restoreVersion } from './versions';

/**
 * `inTurn`: runs the restore in the sync's one queue (a pull running meanwhile would put the
 * storage's copy back over the restored one); `shown` is the file as the person knows it.
 */
export function createRestore({ home, stateDir, storage, inTurn }: { home: string; stateDir: string; storage: () => Endpoint; inTurn: <T>(shown: string, restore: () => Promise<T>) => Promise<T> }) {
  return {
    versions: (p: string) => listVersions(storage(), homeRelative(p, home)),
    restore(p: string, at?: string, to?: string) {
      const rel = homeRelative(p, home); // refused at once, not after a wait
      const shown = displayPath(path.join(home, rel), home);
      // The version is picked in turn, from the versions as the run before left them.
      return inTurn(shown, async () => {
        const remote = storage();
        const version = pickVersion(await listVersions(remote, rel), at ? new Date(at) : undefined);
        if (!version) throw new TabulaError('invalid-argument', `The storage keeps no ${at ? 'such ' : 'older '}version of ${shown}.`);
        const restoredTo = await restoreVersion({ storage: remote, home, rel, version, to, localBackupDir: path.join(stateDir, 'versions', `restore-${Date.now()}`) });
        return { restoredTo, version };
      });
    },
  };
}
