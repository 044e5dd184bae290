// Apply at login: the XDG autostart entry shipped in assets/ is valid, and the command it runs, in a
// session with saved preferences and a real cupsd, leaves the user's default printer set.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCupsd, type CupsdFixture } from '../fixtures/cupsd';
import { createSandbox, repoRoot, type AgentSandbox } from '../fixtures/headless-agent';

const entry = path.join(repoRoot, 'assets/autostart/tabula-prefs.desktop');

describe('XDG autostart entry', () => {
  let cups: CupsdFixture;
  let sb: AgentSandbox;
  beforeAll(async () => {
    cups = await startCupsd();
    cups.addQueue('front-desk', 'ipp://10.77.0.20/ipp/print');
    sb = createSandbox();
  });
  afterAll(async () => {
    await Promise.all([sb?.dispose(), cups?.stop()]);
  });

  it('passes desktop-file-validate', () => {
    const r = spawnSync('desktop-file-validate', [entry], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('runs `tabula prefs apply`, which applies the saved preferences at login', () => {
    const exec = /^Exec=(.*)$/m.exec(fs.readFileSync(entry, 'utf8'))![1]!.split(' ');
    expect(exec.slice(0, 3)).toEqual(['tabula', 'prefs', 'apply']);
    const env = { ...sb.env, ...cups.env, LC_ALL: 'C' };
    const tabula = (...args: string[]) => spawnSync(process.execPath, [path.join(repoRoot, 'bin/tabula.js'), ...args], { env, encoding: 'utf8' });
    expect(tabula('prefs', 'set', 'printers.default', 'ipp://10.77.0.20/ipp/print').status).toBe(0);
    const login = tabula(...exec.slice(1));
    expect(login.stdout).toMatch(/Applied +Default printer/);
    expect(login.status).toBe(0);
    expect(spawnSync('lpstat', ['-d'], { env, encoding: 'utf8' }).stdout).toMatch(/destination: front-desk/);
  });
});
