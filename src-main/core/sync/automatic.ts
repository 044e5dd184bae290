// What makes runs start by themselves, once the agent starts them: the config looked at every few
// seconds, the home watched for changes (which also tells each run which folders changed), and
// when the first run comes.
import path from 'node:path';
import { loadConfig, type TabulaConfig } from '../config';
import { ensureRuntimeDir, type Paths } from '../paths';
import type { Clock } from '../runtime/clock';
import { createChangeJournal, type ChangeJournal } from './change-journal';
import { safe } from './sync-status';
import { ignoredFolders, watchHome } from './watch-home';

/**
 * storage.url may change in a config file at any time (the user, the fleet): look every few
 * seconds, so the window and tray stop describing the old storage without waiting for a client.
 */
export function watchConfig(clock: Clock, look: () => void): () => void {
  let t: unknown = null;
  const again = () => {
    t = clock.setTimeout(() => {
      look();
      again();
    }, 5000);
  };
  again();
  return () => clock.clearTimeout(t);
}

export interface HomeWatchDeps {
  paths: Paths;
  clock: Clock;
  config: () => TabulaConfig;
  reportProblem?: (message: string) => void;
  /** Something in the home changed (the count of changes only here may have moved). */
  changed: () => void;
  /** The home has been quiet for the debounce after changes: time for a run. */
  settled: () => void;
}

/** The change journal both starts a run after changes and tells each run which folders changed. */
export function watchHomeChanges({ paths, clock, config, reportProblem, changed, settled }: HomeWatchDeps): { journal: ChangeJournal; stop: () => void } {
  ensureRuntimeDir(paths); // its marker file lives there
  const cj = createChangeJournal({ home: paths.home, ignore: ignoredFolders(paths, config().storage.url).map((i) => path.join(paths.home, i)), workDir: paths.runtimeDir, reportProblem });
  const unwatch = watchHome({
    paths,
    clock,
    storageUrl: () => config().storage.url,
    debounceMs: () => config().backup.debounceSeconds * 1000,
    subscribe: (listener) => cj.onChanged(listener),
    changed,
    settled,
  });
  return {
    journal: cj,
    stop() {
      cj.close();
      unwatch();
    },
  };
}

/**
 * A home never synced with the storage the image names (a new laptop, a first login) is restored at
 * once, not after the first interval: the person's files should be there when they sit down. A
 * storage the person chose themselves waits for them ("Back up now" in the window they are looking
 * at) or for the interval. Requests queued from before a restart or reboot run at once.
 */
export function firstRunDelay({ paths, cfg, pending, lastSuccessAt, localOnly }: { paths: Paths; cfg: TabulaConfig; pending: number; lastSuccessAt: string | null; localOnly: boolean }): number {
  const restoreNow = !lastSuccessAt && !localOnly && safe(() => loadConfig(paths, { systemOnly: true }).config.storage.url === cfg.storage.url, false);
  return pending || restoreNow ? 0 : cfg.backup.intervalMinutes * 60_000;
}
