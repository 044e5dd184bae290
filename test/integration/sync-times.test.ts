// One time representation end to end: a file's modification time, set to any nanosecond, is read as
// the same integer by the home's listing, by the storage's listing over ssh, by lstat (what the engine
// records for a conflict copy) and after a round trip through the archive. An off-by-a-rounding time
// would make a synced file look edited (and a resolved conflict copy come back).
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { localEndpoint, storageEndpoint } from '../../src-main/core/sync/endpoint';
import { adoptListedTimes, archiveStore, loadArchive } from '../../src-main/core/sync/archive-json';
import { listEndpoint } from '../../src-main/core/sync/engine';
import { decidePath } from '../../src-main/core/sync/plan';
import { parseFindTime, wholeSeconds } from '../../src-main/core/sync/tree';
import { parseStorageUrl } from '../../src-main/core/storage-url';
import { startSshServer, type SshServer } from '../fixtures/sshd';

let sshd: SshServer;
let dir: string;
beforeAll(async () => {
  sshd = await startSshServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-times-'));
});
afterAll(async () => {
  await sshd.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

const NS = 1_000_000_000n;
// From 1950 to 2200, to the nanosecond (touch takes "@seconds.nanoseconds").
const anyTime = fc.bigInt({ min: -20n * 365n * 86400n * NS, max: 230n * 365n * 86400n * NS });
// touch reads "@-1.5" as 1.5 s before 1970 (sign and magnitude).
const touchArg = (ns: bigint) => {
  const abs = ns < 0n ? -ns : ns;
  return `@${ns < 0n ? '-' : ''}${abs / NS}.${(abs % NS).toString().padStart(9, '0')}`;
};

it('find %T@ parses to exact nanoseconds, also before 1970', () => {
  expect(parseFindTime('1796138765.7901979670')).toBe(1796138765790197967n);
  expect(parseFindTime('1796138765.0000000000')).toBe(1796138765n * NS);
  expect(parseFindTime('-1.7500000000')).toBe(-250000000n); // what find prints for 0.25 s before 1970
  expect(parseFindTime('12')).toBe(12n * NS);
  expect(wholeSeconds(-5250000000n)).toBe(-6n);
});

it('every listing path and the archive read back the very time that was set', { timeout: 180_000 }, async () => {
  const home = localEndpoint(path.join(dir, 'home'));
  const storage = storageEndpoint(parseStorageUrl(sshd.url(path.join(dir, 'home'))), sshd.sshOptions, 5, dir);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(anyTime, { minLength: 1, maxLength: 20 }), async (times) => {
      const root = path.join(dir, 'home');
      fs.rmSync(root, { recursive: true, force: true });
      fs.mkdirSync(root);
      times.forEach((t, i) => {
        const f = path.join(root, `f${i}`);
        fs.writeFileSync(f, String(i));
        execFileSync('touch', ['-m', '-d', touchArg(t), f]);
      });
      const [mine, theirs] = [await listEndpoint(home, []), await listEndpoint(storage, [])];
      const stateDir = path.join(dir, `state${run++}`);
      archiveStore(stateDir).save({ version: 2, storage: 's', entries: [...mine.tree].map(([p, e]) => [p, e.type, e.size, e.mtime.toString()]) });
      const archived = loadArchive(stateDir, 's').tree;
      times.forEach((t, i) => {
        const p = `f${i}`;
        expect(mine.tree.get(p)!.mtime).toBe(t);
        expect(theirs.tree.get(p)!.mtime).toBe(t);
        expect(fs.lstatSync(path.join(root, p), { bigint: true }).mtimeNs).toBe(t);
        expect(archived.get(p)!.mtime).toBe(t);
        // And so the plan sees nothing to do.
        expect(decidePath(archived.get(p), mine.tree.get(p), theirs.tree.get(p))).toEqual({ do: 'nothing' });
      });
    }),
    { numRuns: 8, seed: Number(process.env.TABULA_SEED ?? 11) },
  );
});

it('an archive written with float seconds (version 1) is read without taking every file for an edit', async () => {
  const root = path.join(dir, 'v1');
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, 'a.txt'), 'a');
  execFileSync('touch', ['-m', '-d', '@1796138765.790197967', path.join(root, 'a.txt')]);
  const listed = await listEndpoint(localEndpoint(root), []);
  const stateDir = path.join(dir, 'state-v1');
  archiveStore(stateDir).save({ version: 1, storage: 's', entries: [['a.txt', 'f', 1, 1796138765.790198]] });
  const loaded = loadArchive(stateDir, 's');
  expect(loaded.roundedTimes).toBe(true);
  adoptListedTimes(loaded.tree, listed.tree);
  expect(decidePath(loaded.tree.get('a.txt'), listed.tree.get('a.txt'), listed.tree.get('a.txt'))).toEqual({ do: 'nothing' });
});
