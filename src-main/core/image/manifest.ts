// The rsync-tree manifest: every path of an image tree with its type, mode, size and sha256 (files) or
// target (symlinks). The publisher writes it, the fleet key signs it, and the client checks every
// received file against it before the tree can be booted. Everything read here is hostile: paths
// are checked before use, files are opened without following symlinks.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { TabulaError } from '../../common/errors';
import { parseJsonDocument } from '../atomic-file';

export const entrySchema = z
  .object({
    path: z.string().min(1).max(4096),
    type: z.enum(['file', 'dir', 'symlink']),
    /** Permission bits including setuid/setgid/sticky (0o7777). */
    mode: z.number().int().min(0).max(0o7777),
    /** Numeric owner and group (a root tree has files owned by system users); absent = not checked. */
    uid: z.number().int().min(0).max(2 ** 32 - 1).optional(),
    gid: z.number().int().min(0).max(2 ** 32 - 1).optional(),
    size: z.number().int().min(0),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
    target: z.string().min(1).max(4096).optional(),
  })
  .strict();
export type ManifestEntry = z.infer<typeof entrySchema>;

export const versionPattern = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

export const manifestSchema = z
  .object({
    format: z.literal('tabula-manifest-1'),
    version: z.string().regex(versionPattern),
    createdAt: z.string(),
    entries: z.array(entrySchema),
  })
  .strict();
export type Manifest = z.infer<typeof manifestSchema>;

/** Why a manifest path is unsafe, or null when it is a plain relative path inside the tree. */
export function unsafePathReason(p: string): string | null {
  if (p.startsWith('/')) return 'is absolute';
  if (p.includes('\0')) return 'contains a NUL byte';
  const parts = p.split('/');
  if (parts.some((c) => c === '..')) return 'climbs out of the tree with ".."';
  if (parts.some((c) => c === '' || c === '.')) return 'has an empty or "." component';
  return null;
}

/** A relative symlink must stay inside the tree; an absolute one points into the booted system itself. */
export function symlinkEscapes(linkPath: string, target: string): boolean {
  if (target.startsWith('/')) return false;
  // Relative normalisation keeps leading "..": an absolute one would clamp them at "/".
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(linkPath), target));
  return resolved === '..' || resolved.startsWith('../');
}

/** Parses and checks a manifest's bytes: schema, safe unique paths, parents listed as directories first. */
export function parseManifest(bytes: Buffer, expectedVersion?: string): Manifest {
  const parsed = parseJsonDocument(bytes, manifestSchema);
  if (!parsed.ok) throw new TabulaError('image-invalid', `The image manifest ${parsed.problem}: refused.`);
  const m = parsed.value;
  if (expectedVersion !== undefined && m.version !== expectedVersion) {
    throw new TabulaError('image-invalid', `The manifest says version ${m.version} but the channel names ${expectedVersion}: refused.`);
  }
  const seen = new Map<string, ManifestEntry>();
  for (const e of m.entries) {
    const unsafe = unsafePathReason(e.path);
    if (unsafe) throw new TabulaError('image-invalid', `The image manifest lists a path that ${unsafe} (${JSON.stringify(e.path.slice(0, 200))}): refused.`);
    if (seen.has(e.path)) throw new TabulaError('image-invalid', `The image manifest lists ${JSON.stringify(e.path)} twice: refused.`);
    const parent = path.posix.dirname(e.path);
    if (parent !== '.' && seen.get(parent)?.type !== 'dir') {
      throw new TabulaError('image-invalid', `The image manifest lists ${JSON.stringify(e.path)} before (or without) its folder: refused.`);
    }
    if (e.type === 'file' && !e.sha256) throw new TabulaError('image-invalid', `The image manifest gives no checksum for ${JSON.stringify(e.path)}: refused.`);
    if (e.type === 'symlink' && (!e.target || symlinkEscapes(e.path, e.target))) {
      throw new TabulaError('image-invalid', `The image manifest has a link ${JSON.stringify(e.path)} pointing outside the image: refused.`);
    }
    seen.set(e.path, e);
  }
  return m;
}

const HASH_BUF = Buffer.allocUnsafe(1 << 20);

/** sha256 of a regular file, refusing to follow a symlink put in its place. */
export function hashFile(file: string): string {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const h = crypto.createHash('sha256');
    for (;;) {
      const n = fs.readSync(fd, HASH_BUF, 0, HASH_BUF.length, null);
      if (n === 0) break;
      h.update(HASH_BUF.subarray(0, n));
    }
    return h.digest('hex');
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Copies `src` to the new file `dst` (never a link: a later edit of `src` cannot reach the copy),
 * hashing the bytes as they are written, and keeps the copy only when they are the manifest entry's:
 * its owner, mode and `src`'s times are then set. Returns the copy's "dev:ino" (the proof
 * {@link checkTree} accepts for it), or null, with nothing left at `dst`, when `src` is not a regular
 * file of the entry's size and content.
 */
export function copyIfMatches(src: string, dst: string, e: ManifestEntry): string | null {
  // Only a regular file is opened: a FIFO (no writer: the open would block the helper for ever) or a
  // device node planted at a manifest path is fetched instead. O_NONBLOCK: one swapped in between.
  const l = fs.lstatSync(src, { throwIfNoEntry: false });
  if (!l?.isFile() || l.size !== e.size) return null;
  let from: number;
  try {
    from = fs.openSync(src, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  let to: number | null = null;
  let ok = false;
  try {
    const st = fs.fstatSync(from);
    if (!st.isFile() || st.size !== e.size || st.ino !== l.ino || st.dev !== l.dev) return null;
    to = fs.openSync(dst, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    const h = crypto.createHash('sha256');
    for (;;) {
      const n = fs.readSync(from, HASH_BUF, 0, HASH_BUF.length, null);
      if (n === 0) break;
      h.update(HASH_BUF.subarray(0, n));
      for (let off = 0; off < n; ) off += fs.writeSync(to, HASH_BUF, off, n - off);
    }
    if (h.digest('hex') !== e.sha256) return null;
    if (e.uid !== undefined && e.gid !== undefined) fs.fchownSync(to, e.uid, e.gid);
    fs.fchmodSync(to, e.mode); // after the owner: a chown clears setuid/setgid
    fs.futimesSync(to, st.atime, st.mtime);
    const out = fs.fstatSync(to);
    ok = true;
    return `${out.dev}:${out.ino}`;
  } catch {
    return null;
  } finally {
    fs.closeSync(from);
    if (to !== null) {
      fs.closeSync(to);
      if (!ok) fs.rmSync(dst, { force: true });
    }
  }
}

/** Walks a tree depth-first in sorted order without following symlinks. */
function walk(root: string, visit: (rel: string, st: fs.Stats) => void, rel = '') {
  const dir = rel ? path.join(root, rel) : root;
  for (const name of fs.readdirSync(dir).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const st = fs.lstatSync(path.join(root, r));
    visit(r, st);
    if (st.isDirectory()) walk(root, visit, r);
  }
}

/** Builds the manifest of a tree (publisher side). Devices, fifos and sockets have no place in an image. */
export function buildManifest(treeDir: string, version: string, now = new Date()): Manifest {
  const entries: ManifestEntry[] = [];
  walk(treeDir, (rel, st) => {
    const mode = st.mode & 0o7777;
    const owner = { uid: st.uid, gid: st.gid };
    if (st.isDirectory()) entries.push({ path: rel, type: 'dir', mode, ...owner, size: 0 });
    else if (st.isSymbolicLink()) {
      const target = fs.readlinkSync(path.join(treeDir, rel));
      if (symlinkEscapes(rel, target)) throw new TabulaError('invalid-argument', `The link ${rel} → ${target} points outside the tree; fix it before publishing.`);
      entries.push({ path: rel, type: 'symlink', mode: 0o777, ...owner, size: 0, target });
    } else if (st.isFile()) entries.push({ path: rel, type: 'file', mode, ...owner, size: st.size, sha256: hashFile(path.join(treeDir, rel)) });
    else throw new TabulaError('invalid-argument', `${rel} is a device, fifo or socket; an image tree holds only files, folders and links.`);
  });
  return { format: 'tabula-manifest-1', version, createdAt: now.toISOString(), entries };
}

export interface VerifyOptions {
  /**
   * A previous deployment that was fully verified, and its manifest. A received file that is the very
   * same inode (rsync --link-dest hard-linked it) with an identical manifest entry needs no re-hash:
   * its bytes were checked when that deployment was made, and deployments are never written after.
   */
  previous?: { dir: string; manifest: Manifest; inodes?: Map<string, string> } | null;
  /** Files this run wrote and hashed against this manifest ({@link copyIfMatches}): path → "dev:ino". */
  copied?: Map<string, string>;
}

/** path → "dev:ino" of every regular file in a tree: compared with a received tree to find hard links. */
export function inodeIndex(treeDir: string): Map<string, string> {
  const map = new Map<string, string>();
  walk(treeDir, (rel, st) => {
    if (st.isFile()) map.set(rel, `${st.dev}:${st.ino}`);
  });
  return map;
}

export interface TreeProblem {
  path: string;
  /** content: right size, wrong bytes (also what a same-size, same-mtime rsync quick-check miss looks like). */
  kind: 'extra' | 'type' | 'mode' | 'owner' | 'target' | 'size' | 'content' | 'missing';
  text: string;
}

/** Compares a received tree with its manifest and lists every difference. */
export function checkTree(treeDir: string, manifest: Manifest, opts: VerifyOptions = {}): { hashed: number; reused: number; problems: TreeProblem[] } {
  const expected = new Map(manifest.entries.map((e) => [e.path, e]));
  const prevEntries = opts.previous ? new Map(opts.previous.manifest.entries.map((e) => [e.path, e])) : null;
  const problems: TreeProblem[] = [];
  const add = (p: string, kind: TreeProblem['kind'], text: string) => problems.push({ path: p, kind, text: `${p}: ${text}` });
  let hashed = 0;
  let reused = 0;
  const seen = new Set<string>();
  // No name is skipped: whatever is in the tree and not in the signed manifest refuses the image.
  walk(treeDir, (rel, st) => {
    seen.add(rel);
    const e = expected.get(rel);
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'special';
    if (!e) return void add(rel, 'extra', 'not in the manifest');
    if (e.type !== type) return void add(rel, 'type', `is a ${type}, the manifest says ${e.type}`);
    if (type !== 'symlink' && (st.mode & 0o7777) !== e.mode) add(rel, 'mode', `mode ${(st.mode & 0o7777).toString(8)}, expected ${e.mode.toString(8)}`);
    if ((e.uid !== undefined && st.uid !== e.uid) || (e.gid !== undefined && st.gid !== e.gid)) add(rel, 'owner', `owned by ${st.uid}:${st.gid}, expected ${e.uid ?? st.uid}:${e.gid ?? st.gid}`);
    if (type === 'symlink' && fs.readlinkSync(path.join(treeDir, rel)) !== e.target) add(rel, 'target', 'link target differs from the manifest');
    if (type !== 'file') return;
    if (st.size !== e.size) return void add(rel, 'size', `${st.size} bytes, expected ${e.size} (truncated or altered)`);
    if (opts.copied && opts.copied.get(rel) === `${st.dev}:${st.ino}`) {
      hashed++;
      return;
    }
    const prev = prevEntries?.get(rel);
    if (prev && prev.sha256 === e.sha256 && prev.mode === e.mode && prev.uid === e.uid && prev.gid === e.gid) {
      const known = opts.previous!.inodes;
      if (known) {
        if (known.get(rel) === `${st.dev}:${st.ino}`) {
          reused++;
          return;
        }
      } else {
        try {
          const pst = fs.lstatSync(path.join(opts.previous!.dir, rel));
          if (pst.ino === st.ino && pst.dev === st.dev) {
            reused++;
            return;
          }
        } catch {
          /* not there: hash it */
        }
      }
    }
    hashed++;
    if (hashFile(path.join(treeDir, rel)) !== e.sha256) add(rel, 'content', 'content does not match its checksum');
  });
  for (const p of expected.keys()) if (!seen.has(p)) add(p, 'missing', 'missing');
  return { hashed, reused, problems };
}

export function treeMismatchError(problems: TreeProblem[]): TabulaError {
  const first = problems[0]!.text;
  const more = problems.length > 1 ? ` and ${problems.length - 1} more` : '';
  return new TabulaError('image-invalid', `The downloaded image does not match its signed manifest (${first}${more}): it was not installed, and the download was deleted.`, {
    details: problems.slice(0, 20).map((p) => p.text),
  });
}

/** Checks a received tree against its manifest; throws image-invalid listing what is wrong. */
export function verifyTree(treeDir: string, manifest: Manifest, opts: VerifyOptions = {}): { hashed: number; reused: number } {
  const r = checkTree(treeDir, manifest, opts);
  if (r.problems.length) throw treeMismatchError(r.problems);
  return { hashed: r.hashed, reused: r.reused };
}
