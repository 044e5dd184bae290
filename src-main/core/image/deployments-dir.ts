// Small file-system steps shared by the privileged backends: the booted marker, atomic symlink
// switch. The booted marker is written at boot (initramfs hook on a real machine; the test fixture's
// fake bootloader in tests) as <root>/run/tabula/booted.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir } from '../atomic-file';

export function readBootedMarker(root: string): string | null {
  try {
    const v = fs.readFileSync(path.join(root, 'run/tabula/booted'), 'utf8').trim();
    return v || null;
  } catch {
    return null;
  }
}

/** Points `link` at `target` in one rename: a reader (or a power cut) sees the old or the new, never none. */
export function switchSymlink(link: string, target: string): void {
  const tmp = `${link}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  fs.symlinkSync(target, tmp);
  fs.renameSync(tmp, link);
  fsyncDir(path.dirname(link));
}

export function readSymlink(link: string): string | null {
  try {
    return fs.readlinkSync(link);
  } catch {
    return null;
  }
}
