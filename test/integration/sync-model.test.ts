// Model-based property test: random edits on two laptops with syncs in between, real rsync into a
// real storage folder. Whatever the sequence: no content ever written is lost (it is on a laptop, on
// the storage, or in a versions area), and the three sides agree once edits stop.
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import type { TabulaError } from '../../src-main/common/errors';
import { createWorld, readTree, type Laptop } from '../fixtures/laptops';

type Cmd = { op: 'write'; who: 0 | 1; file: string } | { op: 'delete'; who: 0 | 1; file: string } | { op: 'sync'; who: 0 | 1 };

const files = ['a.txt', 'b.txt', 'dir/c.txt', 'dir/sub/d.txt'];
const who = fc.constantFrom<0 | 1>(0, 1);
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ op: fc.constant('write' as const), who, file: fc.constantFrom(...files) }),
  fc.record({ op: fc.constant('delete' as const), who, file: fc.constantFrom(...files) }),
  fc.record({ op: fc.constant('sync' as const), who }),
);

/** Every content anywhere: both homes (with conflict copies), the storage, and both versions areas. */
function everything(dir: string): Set<string> {
  return new Set(Object.values(readTree(dir)).filter((c) => c.startsWith('content ')));
}

it('never loses a change and converges when edits stop', { timeout: 600_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(cmd, { minLength: 1, maxLength: 14 }), async (cmds) => {
      const w = createWorld();
      try {
        const laptops: Laptop[] = [w.laptop('a'), w.laptop('b')];
        // A clock that moves one second per edit: the sync tells versions apart by size and time.
        let clock = Date.parse('2026-01-01T00:00:00Z');
        let n = 0;
        // What a person has when a sync starts must survive it: on a laptop, on the storage or in a
        // versions area. (Overwriting a file before it was ever synced is the person's own doing.)
        const mustKeep = new Set<string>();
        for (const c of cmds) {
          const l = laptops[c.who]!;
          if (c.op === 'write') l.write(c.file, `content ${++n}${'+'.repeat(n % 3)}`, new Date((clock += 1000)));
          else if (c.op === 'delete') l.rm(c.file);
          else {
            for (const content of Object.values(l.files())) mustKeep.add(content);
            // A refusal (e.g. "your home is empty") changes nothing, which is also safe.
            await l.sync().catch((e: TabulaError) => {
              if (e.code !== 'sync-refused') throw e;
            });
            const now = everything(w.dir);
            for (const content of mustKeep) expect(now, `lost "${content}" after ${JSON.stringify(cmds)}`).toContain(content);
          }
        }
        for (const l of [...laptops, ...laptops]) await l.sync({ force: true }); // the person confirms
        const [a, b] = laptops.map((l) => l.files());
        expect(a).toEqual(b);
        expect(w.storageFiles()).toEqual(a);
        for (const content of mustKeep) expect(everything(w.dir)).toContain(content);
      } finally {
        w.dispose();
      }
    }),
    { numRuns: Number(process.env.TABULA_MODEL_RUNS ?? 30) },
  );
});

it('a sync that found nothing to do changes nothing on disk', async () => {
  const w = createWorld();
  const a = w.laptop('a');
  a.write('x.txt', 'x');
  await a.sync();
  const stamp = (p: string) => fs.statSync(p).mtimeMs;
  const before = [stamp(path.join(w.storageDir, 'x.txt')), stamp(path.join(a.home, 'x.txt'))];
  const s = await a.sync();
  expect([s.pushed, s.pulled, s.deletedLocal, s.deletedRemote]).toEqual([[], [], [], []]);
  expect([stamp(path.join(w.storageDir, 'x.txt')), stamp(path.join(a.home, 'x.txt'))]).toEqual(before);
  w.dispose();
});
