// The archive of a large home is read back as it was written: not taken for a damaged file (which made
// every run of a 100,000-file home a first sync) because other state files are capped at 1 MiB.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { loadArchive, saveArchive } from '../../src-main/core/sync/archive';
import type { Tree } from '../../src-main/core/sync/tree';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-archive-'));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

it('an archive of 30,000 files (several MiB) loads whole, with no problem and no file set aside', () => {
  const tree: Tree = new Map();
  for (let i = 0; i < 30_000; i++) tree.set(`Documents/folder-${i >> 5}/report-${i}.odt`, { type: 'f', size: 4096 + i, mtime: 1_796_138_765_790_197_967n + BigInt(i), stamp: `${1_000_000 + i}:1796138765.7901979670` });
  saveArchive(dir, '/srv/nas/ann', tree);
  expect(fs.statSync(path.join(dir, 'sync-archive.json')).size).toBeGreaterThan(2 << 20);
  const loaded = loadArchive(dir, '/srv/nas/ann');
  expect(loaded.problem).toBeNull();
  expect(loaded.first).toBe(false);
  expect(loaded.tree.size).toBe(30_000);
  expect(loaded.tree.get('Documents/folder-937/report-29999.odt')).toEqual(tree.get('Documents/folder-937/report-29999.odt'));
  expect(fs.readdirSync(dir).filter((f) => f.includes('damaged'))).toEqual([]);
});
