import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { createJsonStore } from '../../src-main/core/atomic-file';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-atomic-'));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

it('falls back to the last good copy when the file is damaged, keeping the damaged one', () => {
  const file = path.join(dir, 'history.json');
  const store = createJsonStore(file, z.array(z.number()), () => []);
  store.save([1]);
  store.save([1, 2]);
  fs.writeFileSync(file, '[1, 2, 3'); // a crash or a hand edit
  const loaded = store.load();
  expect(loaded.value).toEqual([1]);
  expect(loaded.problem).toMatch(/not valid JSON.*last good copy/);
  expect(fs.readdirSync(dir).some((f) => f.startsWith('history.json.damaged-'))).toBe(true);
});

it('starts empty, saying so, when neither copy is usable', () => {
  const file = path.join(dir, 'journal.json');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(file, '{"not": "an array"}');
  const loaded = createJsonStore(file, z.array(z.number()), () => []).load();
  expect(loaded.value).toEqual([]);
  expect(loaded.problem).toMatch(/invalid value.*starting afresh/);
});
