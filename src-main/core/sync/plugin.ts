// The two-way home sync as a plug-in. It also answers the reimage guard's question (unsyncedChanges),
// which the agent hands to the helpdesk as a port.
import { syncMethods, type BackupStatus } from '../../common/contract';
import type { FeaturePlugin } from '../runtime/plugin';
import { createSyncService, type SyncServiceDeps } from './service';

export function createSyncPlugin(deps: SyncServiceDeps): FeaturePlugin<typeof syncMethods, BackupStatus> & { service: ReturnType<typeof createSyncService> } {
  const backup = createSyncService(deps);
  return {
    name: 'sync',
    contract: syncMethods,
    service: backup,
    handlers: {
      'backup.start': ({ force }) => backup.start(force),
      'sync.run': ({ force, verify }) => backup.run(force, verify),
      'backup.cancel': () => backup.cancel(),
      'backup.pause': () => backup.pause(),
      'backup.resume': () => backup.resume(),
      'backup.settings': (s) => backup.settings(s),
      'conflicts.resolve': ({ path, keep }) => backup.resolveConflict(path, keep),
      'conflicts.open': ({ path, side, reveal }) => backup.openConflict(path, side, reveal),
      'versions.list': ({ path }) => backup.versions(path),
      'versions.restore': ({ path, at, to }) => backup.restore(path, at, to),
      'backup.history': ({ limit }) => backup.history(limit),
    },
    status: () => backup.status(),
    start: () => backup.startAutomatic(),
    async stop() {
      backup.dispose();
      backup.cancel();
      await backup.whenIdle();
      await backup.closeConnection();
    },
  };
}
