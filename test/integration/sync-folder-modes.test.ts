// A folder's permissions over a real sshd: a folder made private at home becomes private on the
// storage (and so for every laptop that later fetches it), a new private folder arrives private, and
// a storage that shows other modes (one that keeps none, as a CIFS mount's 0777) never opens a folder at home.
import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import type { World } from '../fixtures/laptops';
import { useWorldOverSsh } from '../fixtures/world-over-ssh';

const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
const none = { pulled: 0, pushed: 0, deletedLocal: 0, deletedRemote: 0 };

describe('folder permissions', { timeout: 90_000 }, () => {
  const { world } = useWorldOverSsh();
  let w: World;
  beforeEach(() => {
    w = world();
  });

  it('a folder made private at home is private on the storage and on a fresh laptop; a new private folder arrives private', async () => {
    const a = w.laptop('a');
    a.write('Taxes/2026.txt', 'income');
    a.write('Photos/cat.jpg', 'cat');
    fs.chmodSync(path.join(a.home, 'Photos'), 0o755);
    fs.chmodSync(path.join(a.home, 'Taxes'), 0o755);
    await a.sync();
    expect(mode(path.join(w.storageDir, 'Taxes'))).toBe('755');

    fs.chmodSync(path.join(a.home, 'Taxes'), 0o700);
    a.write('Medical/scan.pdf', 'scan');
    fs.chmodSync(path.join(a.home, 'Medical'), 0o700);
    await a.sync();
    expect(mode(path.join(w.storageDir, 'Taxes'))).toBe('700');
    expect(mode(path.join(w.storageDir, 'Medical'))).toBe('700');
    expect(mode(path.join(w.storageDir, 'Photos'))).toBe('755');
    expect((await a.sync()).counts).toEqual(none);

    const b = w.laptop('b');
    await b.sync();
    expect(mode(path.join(b.home, 'Taxes'))).toBe('700');
    expect(mode(path.join(b.home, 'Medical'))).toBe('700');
    expect(b.read('Taxes/2026.txt')).toBe('income');
  });

  it('a storage showing other folder modes does not open a private folder at home, and is not written again and again', async () => {
    const a = w.laptop('a');
    a.write('Taxes/2026.txt', 'income');
    fs.chmodSync(path.join(a.home, 'Taxes'), 0o700);
    await a.sync();
    fs.chmodSync(path.join(w.storageDir, 'Taxes'), 0o777);
    expect((await a.sync()).counts).toEqual(none);
    expect(mode(path.join(a.home, 'Taxes'))).toBe('700');
    expect((await a.sync()).counts).toEqual(none);
  });
});
