// Listings as sorted streams: each side is listed by the same `find -printf` script (locally, or over
// ssh), sorted there by name in byte order (`sort -z`, LC_ALL=C), and spooled to a file in the state
// folder. The merge (merge.ts) then reads the archive and both listings side by side, one entry at a
// time: memory does not grow with the home.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { TabulaError } from '../../common/errors';
import { describeRsyncFailure } from '../rsync-errors';
import { STORAGE_OUTPUT_MAX, type Endpoint, type ShellBounds, type ShellResult } from './endpoint';
import { createMatcher, prunableDirs, type Matcher } from './excludes';
import { listScript, parseFindTime, PERMISSION_DENIED, SENTINEL, type Entry, type Listing } from './tree';

/**
 * The listing script, sorted by name. The key is everything after the fourth space (the name, spaces
 * and all); sort spills to temporary files past 16 MiB, so a 1M-entry listing never sits in memory.
 * find's exit code (1: some folders were unreadable) is told on stderr, as a pipeline returns sort's.
 */
export const sortedListScript = listScript.replace(
  /\nexec (find [^\n]*)$/,
  `\n{ $1; echo "FIND-EXIT $?" >&2; } | sort -z -t ' ' -k 5 -S 16M`,
);

export interface ListingFile {
  /** False when the folder itself does not exist (an unmounted NAS, a wrong path). */
  exists: boolean;
  /** The spooled listing (NUL-separated records, sorted by name); null when the folder is missing. */
  file: string | null;
  /** sha256 of the listing and the excludes: equal digests mean an unchanged side. */
  digest: string;
  /** Folders find could not read: neither copied nor deleted, with all they hold. */
  unreadable: string[];
  /**
   * sha256 of the listing in find's own order, and the excludes (see {@link listHomeToFile}): equal
   * digests mean the same listing, so the same sorted one.
   */
  rawDigest?: string;
  /** Set when the listing was found equal to a known one and left unsorted: sorts it into `file`. */
  sort?: () => Promise<ListingFile>;
}

/**
 * `bounds`: for a storage over ssh, when its listing is stopped (see {@link ShellBounds}). There it
 * lists in find's own order and this laptop sorts: find's output flows while it walks, so a storage
 * gone silent (a dead disk, a stopped process) is told from one listing a big folder, which sort's
 * silence until its input ends would hide.
 */
export async function listToFile(ep: Endpoint, excludes: string[], file: string, bounds?: ShellBounds): Promise<ListingFile> {
  if (ep.isRemote) return listHomeToFile(ep, excludes, file, null, bounds);
  return listed(ep, excludes, file, await runListing(ep, sortedListScript, excludes, file));
}

/**
 * The home listed in find's own order first, which stays the same while nothing in the home changes
 * (a folder's entries come in the order the file system keeps them). When that listing is the one
 * `known` (the last quiet run's), it is not sorted: the caller has its sorted digest already, and
 * sorts it (`sort()`) only if the run goes on. Otherwise it is sorted at once, as {@link listToFile}
 * would have. Nothing changed with a local storage path: `sort` was a fifth of the run.
 */
export async function listHomeToFile(ep: Endpoint, excludes: string[], file: string, known: { rawDigest: string; digest: string } | null, bounds?: ShellBounds): Promise<ListingFile> {
  const raw = `${file}.unsorted`;
  const r = await runListing(ep, listScript, excludes, raw, bounds);
  const first = await listed(ep, excludes, raw, r);
  if (!first.exists) return first;
  const sort = async (): Promise<ListingFile> => {
    const s = await sortFile(raw, file);
    fs.rmSync(raw, { force: true });
    if (s.code !== 0) throw listingFailure(ep, s.code, s.stderr);
    const hash = crypto.createHash('sha256');
    await hashFile(hash, file);
    hash.update(JSON.stringify(excludes));
    return { ...first, file, digest: hash.digest('hex'), rawDigest: first.digest, sort: undefined };
  };
  if (known && first.digest === known.rawDigest) return { ...first, file: null, digest: known.digest, rawDigest: first.digest, sort };
  return sort();
}

function sortFile(from: string, to: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('sort', ['-z', '-t', ' ', '-k', '5', '-S', '16M', '-o', to, '--', from], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => resolve({ code: null, stderr: String(err) }));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

async function runListing(ep: Endpoint, script: string, excludes: string[], file: string, bounds?: ShellBounds) {
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o600);
  try {
    return await ep.sh(script, [ep.path, ...prunableDirs(excludes)], undefined, fd, bounds);
  } finally {
    fs.closeSync(fd);
  }
}

async function listed(ep: Endpoint, excludes: string[], file: string, r: ShellResult): Promise<ListingFile> {
  if (r.stopped) {
    fs.rmSync(file, { force: true });
    if ('silentSeconds' in r.stopped) throw listingFailure(ep, null, r.stderr, r.stopped.silentSeconds);
    const gib = Math.round((r.stopped.maxBytes / 2 ** 30) * 10) / 10;
    throw new TabulaError('storage-invalid', `The storage ${ep.display} sent a list of its files longer than ${r.stopped.maxBytes === STORAGE_OUTPUT_MAX.file ? `${gib} GiB (about ${Math.round(gib * 10)} million files)` : `${r.stopped.maxBytes} bytes`}, so Tabula stopped listing it: it does not sync that many. If the storage folder holds nowhere near that many, the storage is not answering as it should: ask your helpdesk.`);
  }
  if (r.code === 3 && r.stderr.includes('NOROOT')) {
    fs.rmSync(file, { force: true });
    return { exists: false, file: null, digest: 'missing', unreadable: [] };
  }
  // The sorted script tells find's exit code on stderr (a pipeline returns sort's); the other is find's own.
  const findExit = /FIND-EXIT (\d+)/.exec(r.stderr);
  const code = r.code === 0 && findExit ? Number(findExit[1]) : r.code;
  // find exits 1 when some folders could not be read; the rest of its listing is still good.
  const unreadable = [...r.stderr.matchAll(/find: '\.\/(.*)': Permission denied/g)].map((m) => m[1]!);
  if (code !== 0 && (code !== 1 || unreadable.length === 0)) throw listingFailure(ep, code, r.stderr.replace(/FIND-EXIT \d+\n?/, ''));
  const hash = crypto.createHash('sha256');
  await hashFile(hash, file);
  hash.update(JSON.stringify(excludes));
  return { exists: true, file, digest: hash.digest('hex'), unreadable };
}

/**
 * Feeds a file to a hash through one buffer. Not a read stream: each of its chunks is a new buffer, and
 * a loop that allocates nothing else in JavaScript triggers no collection to free them, so a
 * million-file listing (~100 MB) left ~25 MiB of read chunks behind before V8 noticed.
 */
export async function hashFile(hash: crypto.Hash, file: string): Promise<void> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 16);
    for (let n; (n = (await fh.read(buf, 0, buf.length, null)).bytesRead) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    await fh.close();
  }
}

export function listingFailure(ep: Endpoint, code: number | null, stderr: string, stalledSeconds?: number): TabulaError {
  if (ep.isRemote) {
    return describeRsyncFailure(
      { code: code === 255 ? 255 : code, signal: null, stderr, filesTransferred: 0, bytesTransferred: 0, spawnError: null, ...(stalledSeconds ? { stalledSeconds } : {}) },
      { home: '', storage: ep.display, cancelled: false },
    );
  }
  return new TabulaError('internal', `Could not list ${ep.display}: ${stderr.trim().split('\n')[0] ?? `exit ${code}`}`);
}

/**
 * NUL-separated records of a file, in batches (one decode per 16 KiB: per-record Buffer work costs
 * more). Small batches on purpose: a batch still being merged when the young generation is collected
 * moves to the old one, where it lingers until a full collection; that, not what is kept, is what
 * would make memory grow.
 */
export async function* recordBatches(file: string): AsyncGenerator<string[]> {
  let rest: Buffer | null = null;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 14 }) as AsyncIterable<Buffer>) {
    const buf: Buffer = rest ? Buffer.concat([rest, chunk]) : chunk;
    const last = buf.lastIndexOf(0);
    if (last < 0) {
      rest = buf;
      continue;
    }
    rest = last + 1 < buf.length ? Buffer.from(buf.subarray(last + 1)) : null;
    const batch = buf.toString('utf8', 0, last).split('\0');
    yield batch;
  }
  if (rest?.length) yield [rest.toString('utf8')];
}

const HIGH_UNITS = /[\uD800-\uFFFF]/;

/**
 * Byte order of the UTF-8 names, as `sort` with LC_ALL=C orders them. JavaScript compares UTF-16 code
 * units, which differs only where both strings have a code unit ≥ U+D800 at the first difference.
 */
export function compareNames(a: string, b: string): number {
  if (a === b) return 0;
  // The common case, compared natively: names without such code units (a loop here in JavaScript is
  // what a sync's merge spent most of its time on).
  if (!HIGH_UNITS.test(a) || !HIGH_UNITS.test(b)) return a < b ? -1 : 1;
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === n) return a.length - b.length;
  let x = a.charCodeAt(i);
  let y = b.charCodeAt(i);
  // Surrogates (U+D800–DFFF, astral characters, 4 UTF-8 bytes) sort after U+E000–FFFF (3 bytes).
  if (x >= 0xd800 && y >= 0xd800) {
    x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
    y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
  }
  return x - y;
}

/** Why a device, socket or pipe is not synced (rsync's --no-D passes them over alike). */
export const SPECIAL_FILE = 'special file (device, socket or pipe)';

/** What a listing says besides its entries, known once it has been read to the end. */
export interface ListingNotes {
  hasSentinel: boolean;
  skipped: Listing['skipped'];
  reserved: string[];
}

/**
 * Turns the records of one listing into entries, in order: Tabula's own names, special files, names
 * that are not UTF-8 and excluded ones (with all they hold) are left out and noted; files this user
 * may not read are noted and returned as `unreadable` (neither copied nor deleted).
 */
export function createListingFilter(excludes: string[]) {
  const pruned = prunableDirs(excludes);
  // find pruned those already; the rest are matched here, on both sides alike.
  const matcher: Matcher = createMatcher(excludes.filter((p) => !pruned.includes(p.slice(1, -1))));
  const notes: ListingNotes = { hasSentinel: false, skipped: [], reserved: [] };
  const dropped = new Set<string>();
  const insideDropped = (name: string) => {
    if (!dropped.size) return false;
    for (let i = name.lastIndexOf('/'); i > 0; i = name.lastIndexOf('/', i - 1)) if (dropped.has(name.slice(0, i))) return true;
    return false;
  };
  /** "<type> <size> <mtime> <inode>:<ctime> <name>" → the entry, 'unreadable', or null (left out). */
  function parse(rec: string): { name: string; entry: Entry | 'unreadable' } | null {
    const s1 = rec.indexOf(' ');
    const s2 = rec.indexOf(' ', s1 + 1);
    const s3 = rec.indexOf(' ', s2 + 1);
    const s4 = rec.indexOf(' ', s3 + 1);
    if (s1 < 0 || s2 < 0 || s3 < 0 || s4 < 0) return null;
    const name = rec.slice(s4 + 1);
    if (!name) return null;
    const type = rec.slice(0, s1);
    if (name === SENTINEL) {
      notes.hasSentinel = true;
      return null;
    }
    // A name that is not UTF-8 decodes with U+FFFD; it could not be named back to rsync.
    if (name.includes('\uFFFD')) {
      notes.skipped.push({ path: name, why: 'the name is not valid UTF-8' });
      if (type === 'd') dropped.add(name);
      return null;
    }
    if (type === 'R') {
      notes.reserved.push(name);
      return null;
    }
    if (type !== 'f' && type !== 'd' && type !== 'l' && type !== 'U') {
      notes.skipped.push({ path: name, why: SPECIAL_FILE });
      return null;
    }
    // Children of an excluded folder are excluded too (a folder sorts before what it holds).
    if (insideDropped(name)) return null;
    if (matcher(name, type === 'd')) {
      if (type === 'd') dropped.add(name);
      return null;
    }
    if (type === 'U') {
      notes.skipped.push({ path: name, why: PERMISSION_DENIED });
      return { name, entry: 'unreadable' };
    }
    // A folder's size is its permission bits (find's %m, octal; set-id and sticky bits left out).
    return { name, entry: { type, size: type === 'd' ? parseInt(rec.slice(s1 + 1, s2), 8) & 0o777 : Number(rec.slice(s1 + 1, s2)), mtime: parseFindTime(rec.slice(s2 + 1, s3)), stamp: rec.slice(s3 + 1, s4) } };
  }
  return { parse, notes };
}

/** A whole listing in memory: for small jobs (the window's change count, tests), never for a sync. */
export async function readListing(lf: ListingFile, excludes: string[]): Promise<Listing> {
  if (!lf.exists || !lf.file) return { tree: new Map(), exists: false, hasSentinel: false, skipped: [] };
  const { parse, notes } = createListingFilter(excludes);
  const tree: Listing['tree'] = new Map();
  for await (const batch of recordBatches(lf.file)) {
    for (const rec of batch) {
      const e = parse(rec);
      if (e && e.entry !== 'unreadable') tree.set(e.name, e.entry);
    }
  }
  const skipped = [...notes.skipped, ...lf.unreadable.map((p) => ({ path: p, why: PERMISSION_DENIED }))];
  return { tree, exists: true, hasSentinel: notes.hasSentinel, skipped, reserved: notes.reserved };
}
