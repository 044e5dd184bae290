// What one sync run is given, from the layered config: the two sides, the excludes and the engine's
// limits. One place for the agent's runs and `tabula sync`, so a run by hand syncs what the agent syncs.
import os from 'node:os';
import path from 'node:path';
import type { TabulaConfig } from '../config';
import type { Paths } from '../paths';
import { parseStorageUrl, type Storage } from '../storage-url';
import { localEndpoint, storageEndpoint } from './endpoint';
import type { SyncOptions } from './engine';

/** Tabula's built-in storage: a folder on this laptop's own disk, used until a real one is configured. */
export function builtInStorage(paths: Paths): string {
  return path.join(paths.dataDir, 'storage');
}

/**
 * Never synced: caches, trash, Tabula's own machine-local state, and the built-in local copy (also
 * after switching to a real storage: the old local copy and its versions are not the user's files).
 */
export function defaultExcludes(paths: Paths, storage: Storage | null): string[] {
  const inHome = (p: string) => (p.startsWith(paths.home + '/') ? [`/${path.relative(paths.home, p)}/`] : []);
  return [
    ...new Set([
      '/.cache/',
      '/.thumbnails/',
      '/.local/share/Trash/',
      ...inHome(paths.stateDir),
      ...inHome(paths.runtimeDir),
      // Tabula's own config never roams: a storage must not be able to rewrite it (prefs.json does roam).
      ...(paths.userConfigFile.startsWith(paths.home + '/') ? [`/${path.relative(paths.home, paths.userConfigFile)}*`] : []),
      ...inHome(builtInStorage(paths)),
      ...(storage?.kind === 'local' ? inHome(storage.path) : []),
    ]),
  ];
}

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
      host: os.hostname(),
      maxDeleteShare: cfg.backup.maxDeletePercent / 100,
      bandwidthLimitKBps: cfg.backup.bandwidthLimitKBps || undefined,
      versionsRetentionDays: cfg.backup.versionsRetentionDays,
      verifyIntervalHours: cfg.backup.verifyHours,
    },
  };
}
