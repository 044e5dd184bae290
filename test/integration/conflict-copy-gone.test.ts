// Settling a conflict whose chosen version the person has already deleted or moved: a real conflict
// between two laptops (real rsync over a real sshd), then "keep mine" with my copy gone. Nothing may
// move: the version still at home stays under its name, and the message says what is missing.
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { TabulaError } from '../../src-main/common/errors';
import { createConflictResolution } from '../../src-main/core/sync/conflict-resolution';
import { useWorldOverSsh } from '../fixtures/world-over-ssh';

const { world } = useWorldOverSsh();

const t = (s: number) => new Date(Date.UTC(2026, 2, 1, 9, 0, s));

it('"keep mine" when my copy is gone: refused with a clear message, the other version stays in place, the conflict stays open', { timeout: 90_000 }, async () => {
  const w = world();
  const a = w.laptop('a');
  const b = w.laptop('b');
  a.write('notes.txt', 'base', t(0));
  await a.sync();
  await b.sync();
  a.write('notes.txt', 'mine, on a', t(10));
  b.write('notes.txt', 'theirs, on b (newer)', t(20));
  await b.sync();
  const run = await a.sync();
  expect(run.conflicts).toHaveLength(1);
  const [c] = run.conflicts;
  expect(c!.kept).toBe('remote'); // the storage's newer edit kept the name; mine is the conflict copy
  expect(a.read(c!.conflictPath)).toBe('mine, on a');

  a.rm(c!.conflictPath); // the person deleted (or moved) the copy in the file manager
  const conflicts = createConflictResolution({ home: a.home, stateDir: a.stateDir, thisHost: () => 'a' });
  let err: unknown;
  try {
    conflicts.resolve('notes.txt', 'mine');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TabulaError);
  expect((err as TabulaError).message).toBe(`Not settled: your version (~/${c!.conflictPath}) is no longer there. Nothing was changed.`);
  expect(a.read('notes.txt')).toBe('theirs, on b (newer)');
  expect(conflicts.open()).toHaveLength(1);

  // Keeping the version that is still there settles it.
  expect(conflicts.resolve('notes.txt', 'theirs')).toEqual({ resolved: 'notes.txt' });
  expect(a.read('notes.txt')).toBe('theirs, on b (newer)');
  expect(conflicts.open()).toEqual([]);
  await a.sync();
  expect(w.storageFiles()).toEqual({ 'notes.txt': 'theirs, on b (newer)' });
  expect(fs.existsSync(path.join(a.home, c!.conflictPath))).toBe(false);
});
