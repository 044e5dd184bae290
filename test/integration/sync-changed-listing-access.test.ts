// The listing of the folders the change journal names (local-changes.ts) asks the kernel whether each
// file is readable (find -readable, an access() call) only where the answer is not plain: a file of
// one's own with its owner's read bit is readable, as the full listing (tree.ts) already knows. Real
// find, counted with strace; and a file this user may not read is still told apart.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { localEndpoint } from '../../src-main/core/sync/endpoint';
import { listChangedToFile } from '../../src-main/core/sync/local-changes';

const FIND = execFileSync('sh', ['-c', 'command -v find'], { encoding: 'utf8' }).trim();
let dir: string;
let restorePath: () => void;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-access-'));
  // find on PATH, counting its access() calls (faccessat on this libc) into dir/calls-*.
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'find'), `#!/bin/sh\nexec strace -f -qq -c -U calls -e trace=access,faccessat,faccessat2 -o ${dir}/calls-$$ ${FIND} "$@"\n`, { mode: 0o755 });
  const before = process.env.PATH;
  process.env.PATH = `${bin}:${before}`;
  restorePath = () => (process.env.PATH = before);
});
afterEach(() => {
  restorePath();
  fs.rmSync(dir, { recursive: true, force: true });
});

const accessCalls = () =>
  fs
    .readdirSync(dir)
    .filter((f) => f.startsWith('calls-'))
    .flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8').split('\n'))
    .map((l) => Number(l.trim().split(/\s+/)[0]))
    .filter((n) => Number.isFinite(n))
    .reduce((a, b) => a + b, 0);

it('lists 300 files of a changed folder without an access() call for each, and still asks for the one that is not plainly readable', async () => {
  const home = path.join(dir, 'home');
  fs.mkdirSync(path.join(home, 'Downloads'), { recursive: true });
  for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(home, 'Downloads', `f${i}.txt`), `${i}`);
  // Not plainly readable: another user's file (root reads it all the same), or one's own without its read bit (unreadable).
  const odd = path.join(home, 'Downloads', 'odd.txt');
  fs.writeFileSync(odd, 'odd');
  const root = process.getuid!() === 0;
  if (root) fs.chownSync(odd, 65534, 65534);
  fs.chmodSync(odd, root ? 0o600 : 0o000);
  const out = path.join(dir, 'listing');
  const listed = await listChangedToFile(localEndpoint(home), [], { folders: ['Downloads'], trees: [] }, out);
  const records = fs.readFileSync(listed.file!, 'utf8').split('\0').filter(Boolean);
  expect(records.filter((r) => r.startsWith('f ') && !r.endsWith('odd.txt')).length).toBe(300);
  expect(records.find((r) => r.endsWith('odd.txt'))?.[0]).toBe(root ? 'f' : 'U');
  const calls = accessCalls();
  expect(calls).toBeGreaterThan(0); // the odd one was asked about
  expect(calls).toBeLessThan(30); // before: one and more for each of the 301
});
