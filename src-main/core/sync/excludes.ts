// rsync-style exclude patterns, matched in Node so that both sides of a sync are listed alike:
// a leading "/" anchors at the top of the home, a trailing "/" matches only folders, "*" and "?" stay
// inside one path component, "**" crosses them; a pattern with an inner "/" matches the whole path,
// one without matches the last component.
import path from 'node:path';
import type { Paths } from '../paths';
import type { Storage } from '../storage-url';

export type Matcher = (relPath: string, isDir: boolean) => boolean;

function globToRegExp(glob: string): string {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += '[' + glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return re;
}

export function createMatcher(patterns: string[]): Matcher {
  const rules = patterns.map((raw) => {
    const dirOnly = raw.endsWith('/');
    let p = dirOnly ? raw.slice(0, -1) : raw;
    const anchored = p.startsWith('/');
    if (anchored) p = p.slice(1);
    const wholePath = anchored || p.includes('/') || p.includes('**');
    const re = new RegExp(wholePath ? (anchored ? `^${globToRegExp(p)}$` : `(^|/)${globToRegExp(p)}$`) : `^${globToRegExp(p)}$`);
    return { re, dirOnly, wholePath };
  });
  return (relPath, isDir) => {
    const base = relPath.slice(relPath.lastIndexOf('/') + 1);
    return rules.some((r) => (!r.dirOnly || isDir) && r.re.test(r.wholePath ? relPath : base));
  };
}

/** Anchored folder patterns without wildcards, which the lister can prune before descending. */
export function prunableDirs(patterns: string[]): string[] {
  return patterns.filter((p) => /^\/[^*?[\]]+\/$/.test(p)).map((p) => p.slice(1, -1));
}

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
