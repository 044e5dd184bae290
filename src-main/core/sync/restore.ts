// Older versions of a file from the storage's versions area, and bringing one back (the copy it
// replaces in the home is kept aside in the state folder, never lost).
import path from 'node:path';
import { TabulaError } from '../../common/errors';
import { displayPath } from '../paths';
import type { Endpoint } from './endpoint';
import { homeRelative, listVersions, pickVersion, restoreVersion } from './versions';

export function createRestore({ home, stateDir, storage }: { home: string; stateDir: string; storage: () => Endpoint }) {
  return {
    versions: (p: string) => listVersions(storage(), homeRelative(p, home)),
    async restore(p: string, at?: string, to?: string) {
      const remote = storage();
      const rel = homeRelative(p, home);
      const version = pickVersion(await listVersions(remote, rel), at ? new Date(at) : undefined);
      if (!version) throw new TabulaError('invalid-argument', `The storage keeps no ${at ? 'such ' : 'older '}version of ${displayPath(path.join(home, rel), home)}.`);
      const restoredTo = await restoreVersion({ storage: remote, home, rel, version, to, localBackupDir: path.join(stateDir, 'versions', `restore-${Date.now()}`) });
      return { restoredTo, version };
    },
  };
}
