// Changes in the home start a sync (after a quiet time) and a recount of what is only on this laptop.
// Never reacts to what is never synced. The changes come from the change journal (change-journal.ts),
// which also tells each run which folders to list.
import path from 'node:path';
import type { Clock } from '../runtime/clock';
import type { Paths } from '../paths';
import { parseStorageUrl } from '../storage-url';
import { defaultExcludes } from './excludes';

/** Folders of the home never synced (home-relative, with a trailing slash): never watched, never a reason to sync. */
export function ignoredFolders(paths: Paths, storageUrl: string): string[] {
  let storage = null;
  try {
    storage = parseStorageUrl(storageUrl);
  } catch {
    // A broken storage.url: only the built-in excludes apply.
  }
  return [...defaultExcludes(paths, storage), `/${path.relative(paths.home, paths.dataDir)}/`]
    .filter((e) => e.startsWith('/') && e.endsWith('/') && !e.startsWith('/..'))
    .map((e) => e.slice(1));
}

export function watchHome(deps: {
  paths: Paths;
  storageUrl: () => string;
  debounceMs: () => number;
  clock: Clock;
  /** The change journal's feed of changed paths (home-relative); returns its unsubscribe. */
  subscribe(listener: (rel: string) => void): () => void;
  changed(): void;
  settled(): void;
}): () => void {
  const { paths, clock } = deps;
  let debounce: unknown = null;
  // Without this, a run writing into the built-in storage (~/.local/share/tabula/storage, inside the
  // home) woke the watcher, which started a second run 30 s after every run, and so on for ever.
  let ignored = ignoredFolders(paths, deps.storageUrl());
  const unsubscribe = deps.subscribe((rel) => {
    // Inside an ignored folder, or one of its parents (made when the storage folder was created).
    if (ignored.some((i) => (rel + '/').startsWith(i) || i.startsWith(rel + '/'))) return;
    if (debounce !== null) clock.clearTimeout(debounce);
    debounce = clock.setTimeout(() => {
      debounce = null;
      ignored = ignoredFolders(paths, deps.storageUrl());
      deps.settled();
    }, deps.debounceMs());
    deps.changed();
  });
  return () => {
    if (debounce !== null) clock.clearTimeout(debounce);
    debounce = null;
    unsubscribe();
  };
}
