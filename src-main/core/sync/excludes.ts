// rsync-style exclude patterns, matched in Node so that both sides of a sync are listed alike:
// a leading "/" anchors at the top of the home, a trailing "/" matches only folders, "*" and "?" stay
// inside one path component, "**" crosses them; a pattern with an inner "/" matches the whole path,
// one without matches the last component.
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
