// The plan's lists go to files through a fixed buffer (record-writer.ts): every name must come back
// byte for byte, wherever it falls against the buffer's end, or a file would be pushed, pulled or
// deleted under a wrong name.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { compareNames } from '../../src-main/core/sync/listing';
import { createPathList } from '../../src-main/core/sync/path-list';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-path-list-'));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

it('gives back every name as written: multibyte names across the buffer, a name longer than it, late ones merged in', () => {
  fs.mkdirSync(dir, { recursive: true });
  const pieces = ['a', 'é', '日本', '😀', ' space', 'x'.repeat(200)];
  const names = new Set<string>();
  for (let i = 0; names.size < 5000; i++) names.add(`d${i % 37}/${pieces[i % pieces.length]}-${i}-${pieces[(i * 7) % pieces.length]}`);
  names.add(`long/${'ü'.repeat(40_000)}`); // 80,000 bytes: more than the buffer holds
  const sorted = [...names].sort(compareNames);
  const late = sorted.filter((_, i) => i % 97 === 0);
  const list = createPathList(path.join(dir, 'plan'), 1);
  try {
    for (const n of sorted) if (!late.includes(n)) list.add(n, '-f-', n.length % 3 ? '' : `${n.length}:1:2`);
    for (const n of late.reverse()) list.addLate(n, '-f-');
    const back = [...list.records()];
    expect(back.map((r) => r.name)).toEqual(sorted);
    expect(back.every((r) => r.kinds === '-f-' && (late.includes(r.name) || r.extra === (r.name.length % 3 ? '' : `${r.name.length}:1:2`)))).toBe(true);
    expect(list.count).toBe(sorted.length);
  } finally {
    list.dispose();
  }
});
