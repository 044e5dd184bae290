// Model-based property test: three laptops make random everyday changes (edits in the same second on
// two of them, same-size edits, folders deleted with their contents, folders turned into files and
// back at any depth, edits of conflict copies, folders' permissions changed) and sync in random order; some syncs are SIGKILLed at a
// random point with everything they started. The real engine drives real rsync into a real storage
// folder, and a share of the runs go over a real sshd. Whatever the sequence:
// - no content that was on a laptop when a sync started is ever lost: it is in a home, on the storage,
//   in a conflict copy or in a versions area;
// - no run fails, except one that was killed (a refusal for safety changes nothing and is allowed);
// - a sync never changes the permissions of a folder a home already has (a storage that shows other
//   modes must not open a private folder), and a folder whose permissions a laptop changed has them on
//   the storage once that laptop's sync succeeds;
// - with no more edits, two rounds of syncs bring every home and the storage to the same files.
// Seeded (TABULA_SEED) and shrinking; TABULA_MODEL_RUNS sets the number of runs (CI: a few dozen seconds).
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TabulaError } from '../../src-main/common/errors';
import { createWorld, readTree, type Laptop } from '../fixtures/laptops';
import { startSshServer, type SshServer } from '../fixtures/sshd';

type Who = 0 | 1 | 2;
type Cmd =
  /** Writes a new content at a path; `sec` moves the clock 0 or 1 s (two laptops edit within one second). */
  | { op: 'write'; who: Who; file: string; sec: 0 | 1; size: 'same' | 'other' }
  | { op: 'rm'; who: Who; file: string }
  /** Edits a conflict copy the laptop has, if any (a conflict of a conflict copy can follow). */
  | { op: 'edit-copy'; who: Who; pick: number }
  | { op: 'sync'; who: Who }
  /** chmod of a folder, where one stands (a private folder made shared, or the reverse). */
  | { op: 'chmod'; who: Who; folder: 'd' | 'd/e'; mode: number }
  | { op: 'killed-sync'; who: Who; phase: 'start' | 'listing' | 'pulling' | 'pushing'; delayMs: number };

// Paths that are files in one step and folders in another: d and d/e hold files, and may become files.
const paths = ['a.txt', 'd', 'd/b.txt', 'd/e', 'd/e/c.txt', 'd/e/f/g.txt'];
const who = fc.constantFrom<Who>(0, 1, 2);
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('write' as const), who, file: fc.constantFrom(...paths), sec: fc.constantFrom<0 | 1>(0, 1), size: fc.constantFrom('same' as const, 'other' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('rm' as const), who, file: fc.constantFrom(...paths) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('edit-copy' as const), who, pick: fc.nat(5) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('sync' as const), who }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('chmod' as const), who, folder: fc.constantFrom('d' as const, 'd/e' as const), mode: fc.constantFrom(0o700, 0o750, 0o755, 0o711) }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('killed-sync' as const), who, phase: fc.constantFrom('start' as const, 'listing' as const, 'pulling' as const, 'pushing' as const), delayMs: fc.integer({ min: 0, max: 150 }) }),
  },
);

// What lies around in Tabula's working folders is not "kept": only homes, the storage and versions are.
// (A killed run's own scripts may still be emptying them while the tree is read.)
const working = (rel: string) => /(^|\/)(staging|tmp|tmp-[^/]+|first-[^/]+|empty|sentinel|\.tabula-partial)(\/|$)/.test(rel) && !rel.includes('/versions/');
function everything(dir: string): Set<string> {
  return new Set(Object.entries(readTree(dir, working)).filter(([, c]) => c.startsWith('v')).map(([, c]) => c));
}

/** The permissions of every folder below `root` (Tabula's own areas left out), as octal text. */
function folderModes(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!d.isDirectory() || ['.local', '.tabula', '.tabula-storage', '.tabula-partial'].includes(d.name)) continue;
      const full = path.join(dir, d.name);
      out[path.relative(root, full)] = (fs.statSync(full).mode & 0o777).toString(8);
      walk(full);
    }
  };
  walk(root);
  return out;
}

// Shorthands for the examples.
const w = (who: Who, file: string, sec: 0 | 1 = 1): Cmd => ({ op: 'write', who, file, sec, size: 'same' });
const rm = (who: Who, file: string): Cmd => ({ op: 'rm', who, file });
const sync = (who: Who): Cmd => ({ op: 'sync', who });
const copy = (who: Who): Cmd => ({ op: 'edit-copy', who, pick: 0 });
const chmod = (who: Who, folder: 'd' | 'd/e', mode: number): Cmd => ({ op: 'chmod', who, folder, mode });

let sshd: SshServer;
beforeAll(async () => {
  sshd = await startSshServer();
});
afterAll(() => sshd?.dispose());

it('never loses a change, never fails unless killed, and converges when edits stop', { timeout: 900_000 }, async () => {
  // The examples below count among the runs: 5 keeps one random sequence in CI beside the four.
  const runs = Number(process.env.TABULA_MODEL_RUNS ?? 5);
  await fc.assert(
    fc.asyncProperty(fc.array(cmd, { minLength: 1, maxLength: 12 }), fc.nat(3), fc.boolean(), async (cmds, sshRoll, oneByOne) => {
      // One run in four goes over ssh; one in two hands rsync its names one per run (the batches a
      // home of more than RSYNC_BATCH files is copied in).
      const world = createWorld(sshRoll === 0 ? sshd : undefined);
      const rsyncBatch = oneByOne ? 1 : undefined;
      // Over ssh every list of names to send goes to the storage for rsync to read there, as a long
      // one does (engine.ts NAMES_ON_STORAGE_BYTES); the other sync tests keep short ones here.
      const namesOnStorageBytes = 1;
      const trail = `${sshRoll === 0 ? 'ssh ' : ''}${oneByOne ? 'batches of 1 ' : ''}${JSON.stringify(cmds)}`;
      try {
        const laptops: Laptop[] = [world.laptop('a'), world.laptop('b'), world.laptop('c')];
        let clock = Date.parse('2026-01-01T00:00:00Z');
        let n = 0;
        const mustKeep = new Set<string>();
        const check = (when: string) => {
          const now = everything(world.dir);
          for (const content of mustKeep) expect(now, `lost "${content}" ${when}: ${trail}`).toContain(content);
        };
        // Each laptop's folder permissions after its last sync that went through.
        const synced = new Map<Laptop, Record<string, string>>();
        const syncOk = async (l: Laptop, force = false) => {
          for (const content of Object.values(l.files())) if (content.startsWith('v')) mustKeep.add(content);
          const before = folderModes(l.home);
          const done = await l.sync({ force, rsyncBatch, namesOnStorageBytes }).then(
            () => true,
            (e: TabulaError) => {
              // A refusal for safety changes nothing, which is also safe; anything else is a failure.
              if (e.code !== 'sync-refused') throw new Error(`${l.name}'s sync failed (${e.code}: ${e.message}) after ${trail}`);
              return false;
            },
          );
          check(`after ${l.name}'s sync`);
          const after = folderModes(l.home);
          for (const [f, m] of Object.entries(after)) if (before[f]) expect(m, `${l.name}'s ${f} changed permissions in its sync: ${trail}`).toBe(before[f]);
          if (!done) return;
          const last = synced.get(l);
          const onStorage = folderModes(world.storageDir);
          for (const [f, m] of Object.entries(after)) {
            if (last?.[f] && last[f] !== m && onStorage[f]) expect(onStorage[f], `${l.name} made ${f} ${m}, the storage has: ${trail}`).toBe(m);
          }
          synced.set(l, after);
        };
        for (const c of cmds) {
          const l = laptops[c.who]!;
          if (c.op === 'write') {
            clock += c.sec * 1000;
            const body = `v${++n}`;
            // Same-size contents on purpose: a quick check by size and time cannot tell them apart.
            const content = c.size === 'same' ? body.padEnd(8, '.') : body.padEnd(12 + (n % 5), '+');
            // A folder in the way becomes this file; a file in the way of a folder goes (type changes).
            const abs = path.join(l.home, c.file);
            if (fs.existsSync(abs) && fs.lstatSync(abs).isDirectory()) l.rm(c.file);
            const parts = c.file.split('/');
            for (let i = 1; i < parts.length; i++) {
              const up = path.join(l.home, ...parts.slice(0, i));
              if (fs.existsSync(up) && !fs.lstatSync(up).isDirectory()) fs.rmSync(up);
            }
            // Time only moves forward for one file: an edit is never older than what it replaces (two
            // laptops may still write the very same time, the case a quick check by size and time misses).
            const before = fs.existsSync(abs) ? fs.lstatSync(abs).mtimeMs : -Infinity;
            l.write(c.file, content, new Date(Math.max(clock, Math.floor(before) + 1)));
          } else if (c.op === 'rm') {
            // rm -r; nothing to do where a file stands in the way of the path.
            if (fs.existsSync(path.join(l.home, c.file))) l.rm(c.file);
          } else if (c.op === 'edit-copy') {
            const copies = Object.keys(l.files()).filter((f) => f.includes('.conflict-'));
            if (copies.length) l.write(copies[c.pick % copies.length]!, `v${++n}`.padEnd(8, '.'), new Date((clock = Math.max(clock + 1000, Date.parse('2026-01-01') + 1000 * n))));
          } else if (c.op === 'sync') {
            await syncOk(l);
          } else if (c.op === 'chmod') {
            const abs = path.join(l.home, c.folder);
            if (fs.existsSync(abs) && fs.lstatSync(abs).isDirectory()) fs.chmodSync(abs, c.mode);
          } else {
            for (const content of Object.values(l.files())) if (content.startsWith('v')) mustKeep.add(content);
            const last = await l.syncKilled(c.phase, c.delayMs);
            // Not killed: it must have finished as any run does.
            if (last !== 'killed') expect(last, `${l.name}'s worker: ${trail}`).toMatch(/^(done|failed sync-refused)$/);
            check(`after ${l.name}'s killed sync`);
            await syncOk(l); // the laptop comes back and syncs
          }
        }
        for (let round = 0; round < 2; round++) for (const l of laptops) await syncOk(l, true); // the person confirms
        const [a, b, c] = laptops.map((l) => l.files());
        expect(b, trail).toEqual(a);
        expect(c, trail).toEqual(a);
        expect(world.storageFiles(), trail).toEqual(a);
        check('at the end');
      } finally {
        world.dispose();
      }
    }),
    {
      numRuns: runs,
      seed: process.env.TABULA_SEED ? Number(process.env.TABULA_SEED) : undefined,
      endOnFailure: !!process.env.CI,
      // Issue 11's five cases always run first, whatever the random runs bring.
      examples: [
        // A folder with contents deleted on one laptop, then a file turned into a folder and back at depth on another.
        [[w(0, 'd/e/f/g.txt'), w(0, 'd/b.txt'), sync(0), sync(1), rm(1, 'd'), w(2, 'x'), sync(1), sync(0), w(0, 'd/e'), sync(0), w(2, 'd/e/c.txt'), sync(2), sync(1)], 1, false],
        // Same second, same size, on two laptops; then a conflict of the conflict copy; a kill in between.
        [[w(0, 'a.txt'), sync(0), sync(1), w(0, 'a.txt', 0), w(1, 'a.txt', 0), sync(0), sync(1), sync(0), copy(0), copy(1), { op: 'killed-sync', who: 1, phase: 'pushing', delayMs: 0 }, sync(0), sync(1)], 2, false],
        // Over ssh: a type change while the other laptop edits inside the folder, with a kill while pulling.
        [[w(0, 'd/e/c.txt'), sync(0), sync(2), w(2, 'd/e', 1), w(0, 'd/e/c.txt', 1), sync(0), { op: 'killed-sync', who: 2, phase: 'pulling', delayMs: 5 }, sync(1)], 0, false],
        // A folder made private on one laptop, opened on another (both after a sync), with an edit inside.
        [[w(0, 'd/e/c.txt'), sync(0), sync(1), chmod(1, 'd', 0o700), w(0, 'd/b.txt'), sync(1), sync(0), chmod(0, 'd', 0o755), sync(0), sync(1)], 1, false],
      ],
    },
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
