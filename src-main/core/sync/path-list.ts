// A list of paths the plan decided on (what to push, pull, delete…), kept in a file in the spool as the
// merge finds them, in name order: a first sync of a million files would otherwise hold a million names,
// several times over (the plan, the summary, what was sent). Each record carries the path's three
// types (archive, home, storage) so that no map of folders is needed beside it. The few paths decided
// out of order (folders settled at the end, conflicts) are kept in memory and merged in when read.
import fs from 'node:fs';
import { compareNames } from './listing';
import { createRecordWriter } from './record-writer';

/** The types of a path in the archive, the home and the storage ('f', 'd', 'l', or '-' for none): "d-d". */
export type Kinds = string;

export interface PathRecord {
  name: string;
  kinds: Kinds;
  /** What the list keeps besides (a content check: the two sides' sizes and times); no spaces. */
  extra: string;
}

/** Which side's type says what a path is: 0 the archive (deletions), 1 the home (pushes), 2 the storage (pulls). */
export type SideIndex = 0 | 1 | 2;

export interface PathList {
  /** Paths in the list. */
  readonly count: number;
  /** Of them, files and links (not folders) on the list's side: what a person counts. */
  readonly files: number;
  /** Adds a path found in name order (the merge's): written out. */
  add(name: string, kinds: Kinds, extra?: string): void;
  /** Adds a path out of order (a folder settled at the end, a conflict): kept in memory, merged in when read. */
  addLate(name: string, kinds: Kinds, extra?: string): void;
  /** Reads another list (in name order too) as part of this one from now on. */
  join(other: PathList): void;
  /** Every record, in name order, read from the file a piece at a time. */
  records(): Generator<PathRecord>;
  /** A lookup to ask in name order (the archive's pass): the record of a name, or undefined. */
  cursor(): { get(name: string): PathRecord | undefined; close(): void };
  /** The first `n` names of files (not folders), for messages and the summary. */
  firstFiles(n: number): string[];
  /** Closes the file (the spool is removed with the run). */
  dispose(): void;
}

const CHUNK = 1 << 16;

export function createPathList(file: string, side: SideIndex): PathList {
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o600);
  const out = createRecordWriter(fd);
  let last: string | null = null;
  let count = 0;
  let files = 0;
  let written = false;
  let closed = false;
  const late: PathRecord[] = [];
  const note = (kinds: Kinds) => {
    count++;
    if (kinds[side] !== 'd') files++;
  };
  function* stored(): Generator<PathRecord> {
    out.flush();
    if (!written) return;
    // "<kinds><extra> <name>": the kinds are three characters, the extra has no space.
    for (const r of readRecords(file)) {
      const sp = r.indexOf(' ', 3);
      yield { kinds: r.slice(0, 3), extra: r.slice(3, sp), name: r.slice(sp + 1) };
    }
  }
  function* own(): Generator<PathRecord> {
    const extra = [...late].sort((a, b) => compareNames(a.name, b.name));
    let i = 0;
    for (const r of stored()) {
      while (i < extra.length && compareNames(extra[i]!.name, r.name) < 0) yield extra[i++]!;
      if (i < extra.length && extra[i]!.name === r.name) i++; // listed twice: once is enough
      yield r;
    }
    while (i < extra.length) yield extra[i++]!;
  }
  const joined: PathList[] = [];
  const records = (): Generator<PathRecord> => joined.reduce<Generator<PathRecord>>((all, other) => mergeRecords(all, other.records()), own());
  return {
    get count() {
      return count + joined.reduce((n, j) => n + j.count, 0);
    },
    get files() {
      return files + joined.reduce((n, j) => n + j.files, 0);
    },
    join(other) {
      joined.push(other);
    },
    add(name, kinds, extra = '') {
      // The order is what lets the archive's pass walk this list beside the listings.
      if (last !== null && compareNames(last, name) >= 0) throw new Error(`path list written out of order: ${JSON.stringify(last)} then ${JSON.stringify(name)}`);
      last = name;
      note(kinds);
      out.write(`${kinds}${extra} ${name}\0`);
      written = true;
    },
    addLate(name, kinds, extra = '') {
      note(kinds);
      late.push({ name, kinds, extra });
    },
    records,
    cursor() {
      const it = records();
      let head = it.next();
      return {
        get(name) {
          while (!head.done && compareNames(head.value.name, name) < 0) head = it.next();
          return !head.done && head.value.name === name ? head.value : undefined;
        },
        close: () => void it.return(undefined),
      };
    },
    firstFiles(n) {
      const out: string[] = [];
      if (n <= 0) return out;
      for (const r of records()) {
        if (r.kinds[side] === 'd') continue;
        out.push(r.name);
        if (out.length >= n) break;
      }
      return out;
    },
    dispose() {
      if (closed) return;
      closed = true;
      fs.closeSync(fd);
    },
  };
}

/** The NUL-separated records of a file, in order, read a piece at a time. */
export function* readRecords(file: string): Generator<string> {
  const rd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(CHUNK);
    let rest: Buffer | null = null;
    for (;;) {
      const n = fs.readSync(rd, buf, 0, CHUNK, null);
      if (n === 0) break;
      const all: Buffer = rest ? Buffer.concat([rest, buf.subarray(0, n)]) : buf.subarray(0, n);
      const end = all.lastIndexOf(0);
      if (end < 0) {
        rest = Buffer.from(all);
        continue;
      }
      const recs = all.toString('utf8', 0, end).split('\0');
      rest = end + 1 < all.length ? Buffer.from(all.subarray(end + 1)) : null;
      yield* recs;
    }
  } finally {
    fs.closeSync(rd);
  }
}

/** Two lists of records in name order as one (a name in both, once). */
export function* mergeRecords(a: Iterable<PathRecord>, b: Iterable<PathRecord>): Generator<PathRecord> {
  const [ia, ib] = [a[Symbol.iterator](), b[Symbol.iterator]()];
  try {
    let [x, y] = [ia.next(), ib.next()];
    while (!x.done || !y.done) {
      const cmp = x.done ? 1 : y.done ? -1 : compareNames(x.value.name, y.value.name);
      if (cmp <= 0) {
        yield x.value as PathRecord;
        if (cmp === 0) y = ib.next();
        x = ia.next();
      } else {
        yield y.value as PathRecord;
        y = ib.next();
      }
    }
  } finally {
    // Left early (a lookup that stopped): the files under both close.
    ia.return?.();
    ib.return?.();
  }
}
