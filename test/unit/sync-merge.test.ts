// The streaming merge decides exactly what the whole-tree planner decides: on random trees (names with
// dots, spaces, accents and astral characters, folders turned into files, deletions under changes), the
// three sides sorted in byte order and merged one name at a time give the same plan as planSync over
// the three maps. And the merge's name order is the byte order `sort -z` gives under LC_ALL=C.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareNames } from '../../src-main/core/sync/listing';
import { batchesOf, mergeSorted } from '../../src-main/core/sync/merge';
import { createPlanner, planSync, type SyncPlan } from '../../src-main/core/sync/plan';
import type { Entry, Tree } from '../../src-main/core/sync/tree';

const parts = ['a', 'b', 'a.b', 'a b', 'a-b', 'é', 'Z', '\uffff', '\ue000', '😀', 'a😀'];
const pathArb = fc.array(fc.constantFrom(...parts), { minLength: 1, maxLength: 3 }).map((xs) => xs.join('/'));
const NS = 1_000_000_000n;
const entryArb: fc.Arbitrary<Entry> = fc
  .record({
    type: fc.constantFrom<Entry['type']>('f', 'f', 'f', 'd', 'l'),
    size: fc.integer({ min: 0, max: 2 }),
    // Same second, other nanoseconds, and whole seconds (a storage that keeps only those).
    mtime: fc.constantFrom(100n * NS, 100n * NS + 5n, 101n * NS, 100n * NS + 999_999_999n),
    stamp: fc.constantFrom(undefined, '1:1', '2:1'),
    remoteStamp: fc.constantFrom(undefined, '7:1', '8:1'),
  })
  .map(({ type, size, mtime, stamp, remoteStamp }) => {
    const e: Entry = { type, size: type === 'd' ? 0 : size, mtime };
    if (stamp) e.stamp = stamp;
    if (remoteStamp) e.remoteStamp = remoteStamp;
    return e;
  });

/** A tree as a listing gives it: every parent of an entry is a folder in it. */
function closed(entries: [string, Entry][]): Tree {
  const t: Tree = new Map(entries);
  for (const p of [...t.keys()]) {
    for (let i = p.indexOf('/'); i > 0; i = p.indexOf('/', i + 1)) {
      const parent = p.slice(0, i);
      if (t.get(parent)?.type !== 'd') t.set(parent, { type: 'd', size: 0, mtime: 100n * NS });
    }
  }
  return t;
}

/** A side derived from the archive: most entries kept as they were, some changed, some gone, some new. */
const sideArb = (archive: [string, Entry][]) =>
  fc
    .tuple(
      fc.array(fc.constantFrom('keep', 'keep', 'keep', 'change', 'drop'), { minLength: archive.length, maxLength: archive.length }),
      fc.array(fc.tuple(pathArb, entryArb), { maxLength: 8 }),
      fc.array(entryArb, { minLength: archive.length, maxLength: archive.length }),
    )
    .map(([fate, added, changed]) => {
      const out: [string, Entry][] = [];
      archive.forEach(([p, e], i) => {
        if (fate[i] === 'keep') out.push([p, e]);
        else if (fate[i] === 'change') out.push([p, changed[i]!]);
      });
      return closed([...out, ...added]);
    });

const treesArb = fc
  .array(fc.tuple(pathArb, entryArb), { maxLength: 14 })
  .map((xs) => closed(xs))
  .chain((archive) => fc.tuple(fc.constant(archive), sideArb([...archive]), sideArb([...archive])));

const sorted = (t: Tree) => [...t].sort(([x], [y]) => compareNames(x, y));
const normal = (p: SyncPlan) => ({
  push: [...p.push].sort(),
  pull: [...p.pull].sort(),
  deleteRemote: [...p.deleteRemote].sort(),
  deleteLocal: [...p.deleteLocal].sort(),
  conflicts: [...p.conflicts].sort((x, y) => (x.path < y.path ? -1 : 1)),
  compare: [...p.compare].sort(),
  agreed: [...p.agreed].sort(),
});

describe('streaming merge', () => {
  it('gives the same plan as the whole-tree planner on random trees', async () => {
    await fc.assert(
      fc.asyncProperty(treesArb, fc.integer({ min: 1, max: 4 }), async ([archive, local, remote], batch) => {
        const planner = createPlanner();
        const seen: string[] = [];
        await mergeSorted(batchesOf(sorted(archive), batch), batchesOf(sorted(local), batch), batchesOf(sorted(remote), batch), (p, a, l, r) => {
          seen.push(p);
          planner.add(p, a, l, r);
        });
        expect(normal(planner.finish())).toEqual(normal(planSync(archive, local, remote)));
        // Every name once, in order.
        expect(seen).toEqual([...new Set([...archive.keys(), ...local.keys(), ...remote.keys()])].sort(compareNames));
      }),
      { numRuns: 3000, seed: Number(process.env.TABULA_SEED ?? 9) },
    );
  });

  it('orders names as their UTF-8 bytes (what sort -z does under LC_ALL=C)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (x, y) => {
        const bytes = Math.sign(Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8')));
        expect(Math.sign(compareNames(x, y))).toBe(bytes);
      }),
      { numRuns: 5000 },
    );
    // A folder sorts before what it holds, and "a.b" (0x2e) between "a" and "a/x" (0x2f).
    expect(['a/x', 'a.b', 'a', '😀', '\uffff'].sort(compareNames)).toEqual(['a', 'a.b', 'a/x', '\uffff', '😀']);
  });

  it('refuses a side out of name order instead of reading a missing name as a deletion', async () => {
    const e: Entry = { type: 'f', size: 1, mtime: 1n };
    await expect(mergeSorted(batchesOf<Entry>([]), batchesOf<Entry>([['b', e], ['a', e]]), batchesOf<Entry>([]), () => {})).rejects.toThrow(/not in name order/);
  });
});
