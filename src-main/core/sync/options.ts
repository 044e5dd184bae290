// What one sync run is given, from the layered config: the two sides, the excludes and the engine's
// limits. One place for the agent's runs and `tabula sync`, so a run by hand syncs what the agent syncs.
import type { TabulaConfig } from '../config';
import { deviceName } from '../device-name';
import type { Paths } from '../paths';
import { parseStorageUrl, type Storage } from '../storage-url';
import { localEndpoint, storageEndpoint } from './endpoint';
import type { SyncOptions } from './engine';
import { defaultExcludes } from './excludes';

// Beside the matcher (excludes.ts), so that `tabula sync` loads without the service.
export { builtInStorage, defaultExcludes } from './excludes';

export type RunOptions = Pick<SyncOptions, 'home' | 'storage' | 'excludes' | 'stateDir' | 'host' | 'maxDeleteShare' | 'bandwidthLimitKBps' | 'versionsRetentionDays' | 'verifyIntervalHours'>;

/**
 * The run's options from the config; `home` and `storageUrl` override it (`tabula sync --home/--storage`),
 * `keepConnectionSeconds` keeps the shared ssh connection open that long after a run (the agent's).
 */
export function syncRunOptions(paths: Paths, cfg: TabulaConfig, over: { home?: string; storageUrl?: string; keepConnectionSeconds?: number } = {}): { storage: Storage; options: RunOptions } {
  const home = over.home ?? paths.home;
  const storage = parseStorageUrl(over.storageUrl ?? cfg.storage.url);
  return {
    storage,
    options: {
      home: localEndpoint(home),
      storage: storageEndpoint(storage, cfg.storage.sshOptions, cfg.storage.connectTimeoutSeconds, paths.runtimeDir, over.keepConnectionSeconds),
      excludes: [...defaultExcludes({ ...paths, home }, storage), ...cfg.backup.excludes],
      stateDir: paths.stateDir,
      host: deviceName(paths.root),
      maxDeleteShare: cfg.backup.maxDeletePercent / 100,
      bandwidthLimitKBps: cfg.backup.bandwidthLimitKBps || undefined,
      versionsRetentionDays: cfg.backup.versionsRetentionDays,
      verifyIntervalHours: cfg.backup.verifyHours,
    },
  };
}
