// Changes in the home start a sync (after a quiet time) and a recount of what is only on this laptop.
// Never reacts to what is never synced.
import fs from 'node:fs';
import path from 'node:path';
import type { Clock } from '../runtime/clock';
import type { Paths } from '../paths';
import { parseStorageUrl } from '../storage-url';
import { defaultExcludes } from './excludes';

export function watchHome(deps: { paths: Paths; storageUrl: () => string; debounceMs: () => number; clock: Clock; changed(): void; settled(): void; reportProblem?: (message: string) => void }): () => void {
  const { paths, clock } = deps;
  let watcher: fs.FSWatcher | null = null;
  let debounce: unknown = null;
  // Without this, a run writing into the built-in storage (~/.local/share/tabula/storage, inside the
  // home) woke the watcher, which started a second run 30 s after every run, and so on for ever.
  const ignore = () => {
    let storage = null;
    try {
      storage = parseStorageUrl(deps.storageUrl());
    } catch {
      // A broken storage.url: only the built-in excludes apply.
    }
    return [...defaultExcludes(paths, storage), `/${path.relative(paths.home, paths.dataDir)}/`]
      .filter((e) => e.startsWith('/') && e.endsWith('/') && !e.startsWith('/..'))
      .map((e) => e.slice(1));
  };
  try {
    let ignored = ignore();
    watcher = fs.watch(paths.home, { recursive: true, persistent: false }, (_type, name) => {
      const rel = String(name ?? '');
      // Inside an ignored folder, or one of its parents (made when the storage folder was created).
      if (ignored.some((i) => (rel + '/').startsWith(i) || i.startsWith(rel + '/'))) return;
      if (debounce !== null) clock.clearTimeout(debounce);
      debounce = clock.setTimeout(() => {
        debounce = null;
        ignored = ignore();
        deps.settled();
      }, deps.debounceMs());
      deps.changed();
    });
    watcher.on('error', () => watcher?.close());
  } catch (err) {
    deps.reportProblem?.(`Changes in the home are not watched (${(err as Error).message}); the schedule still runs.`);
  }
  return () => {
    if (debounce !== null) clock.clearTimeout(debounce);
    debounce = null;
    watcher?.close();
  };
}
