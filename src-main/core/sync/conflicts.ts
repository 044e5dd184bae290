// Conflict copies: a free name for the version that steps aside, and a move that never replaces a file.
// Their record, kept for the window and `tabula conflicts`, is in conflict-store.ts.
import fs from 'node:fs';
import path from 'node:path';
import { conflictName, type Side } from './plan';

export interface ConflictRecord {
  path: string;
  /** Where the other version now lives, on both sides. */
  conflictPath: string;
  /** Whose version kept the name: this laptop's ("local") or the storage's ("remote"). */
  kept: Side;
  at: string;
  /** The laptop that wrote the storage's version, when its record says (see origin-log.ts). */
  from?: string;
}

/**
 * A conflict name no file has: the time of the renamed version to the second and its laptop, then
 * "-2", "-3"… when that is taken (two conflicts on one path within a second, or a copy kept from before).
 */
export function freeConflictName(p: string, when: Date, host: string, taken: (p: string) => boolean): string {
  const first = conflictName(p, when, host);
  if (!taken(first)) return first;
  for (let n = 2; ; n++) {
    const next = conflictName(p, when, `${host}-${n}`);
    if (!taken(next)) return next;
  }
}

/**
 * Renames a file or link without ever replacing what is at the destination: link(2) fails with EEXIST
 * where rename(2) would silently overwrite (a person's edited conflict copy, say).
 */
export function moveNoClobber(from: string, to: string) {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  try {
    fs.linkSync(from, to);
  } catch (err) {
    // Another file system (state kept apart from the home): an exclusive copy refuses an existing name too.
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV' || fs.lstatSync(from).isSymbolicLink()) throw err;
    fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL);
  }
  fs.unlinkSync(from);
}
