// The steps a full boot (the initramfs hook) and a soft reboot (tabula-nextroot) share, from
// assets/boot/usr/lib/tabula/boot/stateless.sh, run for real by a POSIX shell on a persistent disk
// laid out in a temp folder (its own mount namespace, so the tmpfs /etc is real and goes away with
// it). The lab boots them (test/lab); this shows each promise on its own, with the attack cases.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeIn as w, readOrNull as read } from '../fixtures/files';

const lib = path.resolve(__dirname, '../../assets/boot/usr/lib/tabula/boot/stateless.sh');
const canMount = spawnSync('unshare', ['-rm', 'true']).status === 0;

let dir: string;
let tree: string;
let persist: string;
let root: string;

/** Runs `script` after sourcing the library, in a private mount namespace; `root/etc` is listed from inside it. */
function run(script: string) {
  const r = spawnSync('unshare', ['-rm', 'sh', '-eu', '-c', `. "${lib}"; ${script}; echo ==etc; (cd "${root}/etc" && find . -type f | sort | while read -r f; do echo "$f $(cat "$f")"; done)`], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr, etc: r.stdout.split('==etc\n')[1] ?? '' };
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-stateless-'));
  tree = path.join(dir, 'tree');
  persist = path.join(dir, 'persist');
  root = path.join(dir, 'root');
  // The image: its /etc and /var.
  w(path.join(tree, 'etc/hostname'), 'laptop\n');
  w(path.join(tree, 'etc/ssh/sshd_config'), 'image\n');
  w(path.join(tree, 'var/lib/dpkg/status'), 'image dpkg\n');
  w(path.join(tree, 'var/lib/tabula/from-image'), 'image\n');
  // The persistent disk after some use: Tabula's deployments and identity, the journal, and junk.
  w(path.join(persist, 'var/lib/tabula/deployments/1/tree/marker'), 'deployment 1\n');
  w(path.join(persist, 'var/lib/tabula/identity/machine-id'), '0123456789abcdef0123456789abcdef\n');
  w(path.join(persist, 'var/lib/tabula/identity/ssh_host_ed25519_key'), 'host key\n');
  w(path.join(persist, 'var/lib/tabula/state/agent.json'), 'machine state\n');
  w(path.join(persist, 'var/log/journal/x/system.journal'), 'journal\n');
  w(path.join(persist, 'var/lib/stray/file'), 'stray\n');
  w(path.join(persist, 'var/lib/dpkg/status'), 'edited by root\n');
  w(path.join(persist, 'home/ann/notes.txt'), 'mine\n');
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  w(path.join(root, 'etc/root-edit'), 'an edit in the old /etc\n');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!canMount)('stateless.sh (the boot and the soft reboot share it)', () => {
  it("makes /etc the image's plus this machine's identity", () => {
    const r = run(`tabula_fresh_etc "${tree}" "${persist}/var/lib/tabula/identity" "${root}"`);
    expect(r.code, r.err).toBe(0);
    expect(r.etc.split('\n').filter(Boolean)).toEqual(['./hostname laptop', './machine-id 0123456789abcdef0123456789abcdef', './ssh/ssh_host_ed25519_key host key', './ssh/sshd_config image']);
    // Outside the namespace nothing was mounted: the old /etc is untouched there.
    expect(read(path.join(root, 'etc/root-edit'))).toBe('an edit in the old /etc\n');
  });

  it('makes a machine-id on the first boot and keeps it for the next ones', () => {
    fs.rmSync(path.join(persist, 'var/lib/tabula/identity'), { recursive: true });
    const first = run(`tabula_fresh_etc "${tree}" "${persist}/var/lib/tabula/identity" "${root}"`);
    expect(first.code, first.err).toBe(0);
    const id = read(path.join(persist, 'var/lib/tabula/identity/machine-id'))!.trim();
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(fs.statSync(path.join(persist, 'var/lib/tabula/identity')).mode & 0o777).toBe(0o700);
    expect(first.etc).toContain(`./machine-id ${id}`);
    expect(run(`tabula_fresh_etc "${tree}" "${persist}/var/lib/tabula/identity" "${root}"`).etc).toContain(`./machine-id ${id}`);
  });

  it("resets /var to the image's, keeping only Tabula's state and the journal; /home is not touched", () => {
    const r = run(`tabula_reset_var "${tree}" "${persist}"`);
    expect(r.code, r.err).toBe(0);
    const v = (rel: string) => read(path.join(persist, 'var', rel));
    expect(v('lib/dpkg/status')).toBe('image dpkg\n');
    expect(v('lib/stray/file')).toBeNull();
    expect(v('lib/tabula/deployments/1/tree/marker')).toBe('deployment 1\n');
    expect(v('lib/tabula/identity/machine-id')).toBe('0123456789abcdef0123456789abcdef\n');
    expect(v('lib/tabula/state/agent.json')).toBe('machine state\n');
    // Kept means the persistent copy, not the image's.
    expect(v('lib/tabula/from-image')).toBeNull();
    expect(v('log/journal/x/system.journal')).toBe('journal\n');
    expect(read(path.join(persist, 'home/ann/notes.txt'))).toBe('mine\n');
    // The old /var is left for the caller (a running system may still use it).
    expect(read(path.join(persist, 'var.old/lib/stray/file'))).toBe('stray\n');
  });

  it("after a reimage drops Tabula's machine state too, and keeps the deployments", () => {
    w(path.join(persist, 'var/lib/tabula/reset-on-boot'), '{}\n');
    const r = run(`tabula_reset_var "${tree}" "${persist}"`);
    expect(r.code, r.err).toBe(0);
    expect(read(path.join(persist, 'var/lib/tabula/state/agent.json'))).toBeNull();
    expect(read(path.join(persist, 'var/lib/tabula/reset-on-boot'))).toBeNull();
    expect(read(path.join(persist, 'var/lib/tabula/deployments/1/tree/marker'))).toBe('deployment 1\n');
  });

  it('a reset cut short before the switch leaves the last /var in place; the next one starts over', () => {
    // As if the power went while var.new was being filled.
    w(path.join(persist, 'var.new/half'), 'half\n');
    const r = run(`tabula_reset_var "${tree}" "${persist}"`);
    expect(r.code, r.err).toBe(0);
    expect(read(path.join(persist, 'var/half'))).toBeNull();
    expect(read(path.join(persist, 'var/lib/tabula/deployments/1/tree/marker'))).toBe('deployment 1\n');
  });

  it('fails (the caller stops the boot) rather than leave a half-made /etc when the image has none', () => {
    fs.rmSync(path.join(tree, 'etc'), { recursive: true });
    const r = run(`if tabula_fresh_etc "${tree}" "${persist}/var/lib/tabula/identity" "${root}"; then echo made; else echo refused; fi`);
    expect(r.out).toMatch(/^refused$/m);
  });
});
