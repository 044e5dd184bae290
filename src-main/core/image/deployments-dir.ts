// Small file-system steps shared by the privileged backends: the booted marker, atomic symlink
// switch. The booted marker is written at boot (initramfs hook on a real machine; the test fixture's
// fake bootloader in tests) as <root>/run/tabula/booted.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { TabulaError } from '../../common/errors';
import { fsyncDir, readJsonDocument } from '../atomic-file';

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

/** The versions that failed to start on this computer (both backends; ostree also records the commit). */
export const failedBootsSchema = z.array(z.object({ version: z.string().max(200), bootedInstead: z.string().max(200), checksum: z.string().max(64).optional(), at: z.string().max(100) })).max(50);
export type FailedBootRecord = z.infer<typeof failedBootsSchema>[number];

/**
 * The versions that failed to start here. A damaged record is never taken for "none failed" (the
 * version that failed would be installed again): staging and resetting stop, and say why.
 */
export function readFailedBoots(file: string): FailedBootRecord[] {
  const r = readJsonDocument(file, failedBootsSchema);
  if (r.status === 'ok') return r.value;
  if (r.status === 'missing') return [];
  throw new TabulaError('image-invalid', `The record of versions that failed to start on this computer (${file}) ${r.problem}: no version is installed until it is repaired or removed, so that one that failed is not installed again.`);
}
