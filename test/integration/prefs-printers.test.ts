// Printer preferences against a real cupsd (own config, 127.0.0.1, free port): `tabula prefs apply`
// run as a non-root user writes that user's ~/.cups/lpoptions, and real CUPS clients run as the same
// user see the default printer and options. Then the prefs roam to "laptop B" (another home, other
// queue names for the same printers) and give the same result.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCupsd, type CupsdFixture } from '../fixtures/cupsd';
import { createSandbox, repoRoot, type AgentSandbox } from '../fixtures/headless-agent';

const OFFICE = 'ipp://10.77.0.5/ipp/print';
const LAB_DNSSD = 'dnssd://Lab%20Color._ipp._tcp.local/?uuid=1f0c9a9e-0000-4000-8000-00000000000a';
const LAB_DNSSD_B = 'dnssd://Lab%20Color._ipp._tcp.local/?uuid=1f0c9a9e-0000-4000-8000-00000000000b';
const tabula = path.join(repoRoot, 'bin', 'tabula.js');

/** Runs a command as the unprivileged user "nobody" with the sandbox's environment. */
function asUser(sb: AgentSandbox, cups: CupsdFixture, cmd: string, args: string[], input?: string) {
  const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', cmd, ...args], {
    env: { ...sb.env, ...cups.env, USER: 'nobody', LC_ALL: 'C' },
    cwd: sb.dir,
    encoding: 'utf8',
    input,
    timeout: 60_000,
  });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}
const tabulaAs = (sb: AgentSandbox, cups: CupsdFixture, ...args: string[]) => asUser(sb, cups, process.execPath, [tabula, ...args]);
const chownToUser = (dir: string) => spawnSync('chown', ['-R', 'nobody:nogroup', dir]);

describe('printer preferences with a real cupsd', () => {
  let cupsA: CupsdFixture;
  let cupsB: CupsdFixture;
  let a: AgentSandbox;
  let b: AgentSandbox;

  beforeAll(async () => {
    [cupsA, cupsB] = await Promise.all([startCupsd(), startCupsd()]);
    cupsA.addQueue('office-lj', OFFICE);
    cupsA.addQueue('lab', LAB_DNSSD);
    // Laptop B: the same printers under other queue names (and the DNS-SD URI of another subnet).
    cupsB.addQueue('Office_LaserJet_5th_floor', OFFICE);
    cupsB.addQueue('lab-colour', LAB_DNSSD_B);
    cupsB.addQueue('zz-other', 'ipp://10.77.0.9/ipp/print');
    a = createSandbox();
    b = createSandbox();
    chownToUser(a.dir);
    chownToUser(b.dir);
  });
  afterAll(async () => {
    await Promise.all([a?.dispose(), b?.dispose(), cupsA?.stop(), cupsB?.stop()]);
  });

  it('a non-root user sets the default printer and options; CUPS clients see them', () => {
    expect(tabulaAs(a, cupsA, 'prefs', 'set', 'printers.default', OFFICE).code).toBe(0);
    const options = [{ printer: { uri: LAB_DNSSD, label: 'Lab colour printer' }, options: { duplex: 'two-sided-long-edge', media: 'A4', color: 'monochrome' } }];
    expect(tabulaAs(a, cupsA, 'prefs', 'set', 'printers.options', JSON.stringify(options)).code).toBe(0);

    const dry = tabulaAs(a, cupsA, 'prefs', 'apply', '--dry-run');
    expect(dry.stdout).toMatch(/Would apply +Default printer: make .* the default \(queue office-lj\)/);
    expect(fs.existsSync(path.join(a.home, '.cups/lpoptions'))).toBe(false);

    const applied = tabulaAs(a, cupsA, 'prefs', 'apply');
    expect(applied.stderr).toBe('');
    expect(applied.stdout).toMatch(/Applied +Default printer/);
    expect(applied.stdout).toMatch(/Applied +Options for Lab colour printer: set duplex two-sided-long-edge, media A4, color monochrome on queue lab/);
    expect(applied.code).toBe(0);
    expect(fs.statSync(path.join(a.home, '.cups/lpoptions')).uid).toBe(65534);

    expect(asUser(a, cupsA, 'lpstat', ['-d']).stdout).toMatch(/destination: office-lj/);
    const lab = asUser(a, cupsA, 'lpoptions', ['-p', 'lab']).stdout;
    expect(lab).toMatch(/\bmedia=A4\b/);
    expect(lab).toMatch(/\bsides=two-sided-long-edge\b/);
    expect(lab).toMatch(/\bprint-color-mode=monochrome\b/);

    // Applying again is a no-op, reported as such.
    expect(tabulaAs(a, cupsA, 'prefs', 'apply').stdout).toMatch(/Already so +Default printer/);
  });

  it('roams: synced to laptop B, the same printers are chosen under their local queue names', () => {
    // The home sync is another part of Tabula; a real rsync of the prefs folder stands in for it.
    const src = path.join(a.env.XDG_CONFIG_HOME!, 'tabula') + '/';
    const dst = path.join(b.env.XDG_CONFIG_HOME!, 'tabula');
    const rsync = spawnSync('rsync', ['-a', '--mkpath', src, dst]);
    expect(rsync.status).toBe(0);

    const applied = tabulaAs(b, cupsB, 'prefs', 'apply');
    expect(applied.stdout).toMatch(/queue Office_LaserJet_5th_floor/);
    expect(applied.code).toBe(0);
    expect(asUser(b, cupsB, 'lpstat', ['-d']).stdout).toMatch(/destination: Office_LaserJet_5th_floor/);
    const lab = asUser(b, cupsB, 'lpoptions', ['-p', 'lab-colour']).stdout;
    expect(lab).toMatch(/\bmedia=A4\b/);
    expect(lab).toMatch(/\bsides=two-sided-long-edge\b/);
    expect(lab).toMatch(/\bprint-color-mode=monochrome\b/);
  });

  it('a printer that is gone is reported, and nothing else is lost or changed', () => {
    cupsB.removeQueue('lab-colour');
    const file = path.join(b.home, '.cups/lpoptions');
    const before = fs.readFileSync(file, 'utf8');
    const r = tabulaAs(b, cupsB, 'prefs', 'apply');
    expect(r.stdout).toMatch(/Not applied +Options for Lab colour printer.*\n.*is not available on this laptop; its options are kept for when it is\./);
    expect(r.stdout).toMatch(/Already so +Default printer/);
    expect(r.code).toBe(1); // something was not applied: a login script can tell
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
    expect(JSON.parse(tabulaAs(b, cupsB, 'prefs', 'get', 'printers.options').stdout)).toHaveLength(1);
  });

  it('a paper size the printer does not offer fails with the sizes it does offer', () => {
    const options = [{ printer: { uri: OFFICE }, options: { media: 'A0' } }];
    expect(tabulaAs(b, cupsB, 'prefs', 'set', 'printers.options', JSON.stringify(options)).code).toBe(0);
    const r = tabulaAs(b, cupsB, 'prefs', 'apply', '--only', 'printers');
    expect(r.stdout).toMatch(/Failed +Options for .*\n.*does not offer the paper size "A0" \(it offers Letter, Legal.*A4/);
    expect(r.code).toBe(1);
  });

  it('with no printing service it says so instead of failing', () => {
    const r = tabulaAs(b, { ...cupsB, env: { CUPS_SERVER: '127.0.0.1:1' } }, 'prefs', 'apply');
    expect(r.stdout).toMatch(/Not applied +Printers.*\n.*The printing service \(CUPS\) is not running/);
  });
});
