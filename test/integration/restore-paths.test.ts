// `tabula restore` (issue 12 item 12) through the real CLI and agent: a relative --to means a folder
// in the home, and a symlink in the home that leads out of it (one that arrived with the sync) is
// never written through.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSandbox, startHeadlessAgent, type AgentSandbox } from '../fixtures/headless-agent';

let sb: AgentSandbox;
beforeEach(async () => {
  sb = createSandbox();
  fs.mkdirSync(path.join(sb.dir, 'nas'));
  sb.writeUserConfig({ storage: { url: path.join(sb.dir, 'nas') } });
  await startHeadlessAgent(sb);
  expect((await sb.cli(['backup', 'now'])).code).toBe(0);
  fs.writeFileSync(path.join(sb.home, 'Documents/notes.txt'), 'Remember the milk and the eggs.\n');
  const r = await sb.cli(['backup', 'now']); // the storage now keeps the first version
  expect(r.code, r.stderr).toBe(0);
});
afterEach(() => sb.dispose());

describe('restore paths', () => {
  it('a relative --to is a folder in the home, not wherever the command ran', async () => {
    const r = await sb.cli(['restore', 'Documents/notes.txt', '--to', 'restored']); // the CLI runs in sb.dir
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(sb.home, 'restored/notes.txt'), 'utf8')).toBe('Remember the milk.\n');
    expect(fs.existsSync(path.join(sb.dir, 'restored'))).toBe(false);
  });

  it('refuses to write through a symlinked folder that leads out of the home', async () => {
    const outside = path.join(sb.dir, 'outside');
    fs.mkdirSync(outside);
    fs.rmSync(path.join(sb.home, 'Documents'), { recursive: true });
    fs.symlinkSync(outside, path.join(sb.home, 'Documents'));
    const inPlace = await sb.cli(['restore', 'Documents/notes.txt']);
    expect(inPlace.code).toBe(1);
    expect(inPlace.stderr).toContain(`Not restored: ~/Documents is a link to ${outside}, outside your home folder.`);
    const via = await sb.cli(['restore', 'Documents/notes.txt', '--to', 'Documents/old']);
    expect(via.code).toBe(1);
    expect(fs.readdirSync(outside)).toEqual([]);
    // A link that stays inside the home is fine.
    fs.mkdirSync(path.join(sb.home, 'Archive'));
    fs.symlinkSync(path.join(sb.home, 'Archive'), path.join(sb.home, 'Shortcut'));
    const inside = await sb.cli(['restore', 'Documents/notes.txt', '--to', 'Shortcut']);
    expect(inside.code, inside.stderr).toBe(0);
    expect(fs.existsSync(path.join(sb.home, 'Archive/notes.txt'))).toBe(true);
  });
});
