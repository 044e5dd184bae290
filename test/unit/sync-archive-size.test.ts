// The archive of a large home written by the previous Tabula (JSON, version 2) is converted whole: not
// taken for a damaged file because other state files are capped at 1 MiB (which made every run of a
// 100,000-file home a first sync, and would now throw the archive away at the conversion).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { openArchive } from '../../src-main/core/sync/archive';
import { loadArchive } from '../../src-main/core/sync/archive-json';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-archive-'));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

it('a version 2 archive of 30,000 files (several MiB) is converted whole, with no problem and nothing set aside', async () => {
  const entries = Array.from({ length: 30_000 }, (_, i) => [`Documents/folder-${i >> 5}/report-${i}.odt`, 'f', 4096 + i, String(1_796_138_765_790_197_967n + BigInt(i)), `${1_000_000 + i}:1796138765.7901979670`, '']);
  fs.writeFileSync(path.join(dir, 'sync-archive.json'), JSON.stringify({ version: 2, storage: '/srv/nas/ann', entries }, null, 1));
  expect(fs.statSync(path.join(dir, 'sync-archive.json')).size).toBeGreaterThan(2 << 20);
  const opened = await openArchive(dir, '/srv/nas/ann');
  expect(opened.problem).toBeNull();
  expect(opened.first).toBe(false);
  const tree = loadArchive(dir, '/srv/nas/ann').tree;
  expect(tree.size).toBe(30_000);
  expect(tree.get('Documents/folder-937/report-29999.odt')).toEqual({ type: 'f', size: 4096 + 29_999, mtime: 1_796_138_765_790_227_966n, stamp: '1029999:1796138765.7901979670' });
  expect(fs.readdirSync(dir).filter((f) => f.includes('damaged'))).toEqual([]);
});
