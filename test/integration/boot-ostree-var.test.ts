// The ostree laptop's /var reset at every boot (assets/boot/.../50tabula-ostree/tabula-ostree-var.sh),
// run for real on a deployment laid out in a temp folder as ostree-prepare-root leaves it, in its own
// mount namespace with the kernel's command line naming the stateroot. The lab boots it (test/lab);
// this shows each promise on its own, with the attack cases.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeIn as w, readOrNull as read } from '../fixtures/files';

const script = path.resolve(__dirname, '../../assets/boot/usr/lib/dracut/modules.d/50tabula-ostree/tabula-ostree-var.sh');
const stateless = path.resolve(__dirname, '../../assets/boot/usr/lib/tabula/boot/stateless.sh');
const canMount = spawnSync('unshare', ['-rm', 'true']).status === 0;

let dir: string;
let root: string;
let factory: string;
let v: string;

/** Boots the reset: the stateroot "tabula" named on the (bind-mounted) kernel command line. */
function reset() {
  const cmdline = path.join(dir, 'cmdline');
  fs.writeFileSync(cmdline, 'BOOT_IMAGE=/ostree/tabula-1/vmlinuz ostree=/ostree/boot.1/tabula/0123abcd/0 root=LABEL=tabula-ostree rw\n');
  const r = spawnSync('unshare', ['-rm', 'sh', '-eu', '-c', `mount --bind "${cmdline}" /proc/cmdline && sh "${script}" "${root}"`], { encoding: 'utf8' });
  return { code: r.status, err: r.stderr };
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-ostree-var-'));
  root = path.join(dir, 'deployment');
  factory = path.join(root, 'usr/share/factory/var');
  v = path.join(root, 'sysroot/ostree/deploy/tabula/var');
  // The image: its /var as the factory default, and the list of what survives a boot.
  w(path.join(root, 'usr/lib/tabula/boot/stateless.sh'), fs.readFileSync(stateless, 'utf8'));
  w(path.join(factory, 'lib/dpkg/status'), 'image dpkg\n');
  w(path.join(factory, 'lib/systemd/seed'), 'image seed\n');
  w(path.join(factory, 'cache/apt/pkgcache'), 'image cache\n');
  w(path.join(factory, 'log/README'), 'image log\n');
  // The machine's /var after some use: Tabula's identity and state, the journal, the home, and junk.
  w(path.join(v, 'lib/tabula/identity/machine-id'), '0123456789abcdef0123456789abcdef\n');
  w(path.join(v, 'lib/tabula/state/agent.json'), 'machine state\n');
  w(path.join(v, 'log/journal/x/system.journal'), 'journal\n');
  w(path.join(v, 'home/ann/notes.txt'), 'mine\n');
  w(path.join(v, 'lib/stray/file'), 'stray\n');
  w(path.join(v, 'tmp/.hidden'), 'stray\n');
  w(path.join(v, 'lib/dpkg/status'), 'edited by root\n');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!canMount)('tabula-ostree-var (the ostree laptop\'s /var at every boot)', () => {
  it("puts /var back to the image's, keeping Tabula's machine state, the journal and the home", () => {
    const r = reset();
    expect(r.code, r.err).toBe(0);
    expect(read(path.join(v, 'lib/dpkg/status'))).toBe('image dpkg\n');
    expect(read(path.join(v, 'lib/systemd/seed'))).toBe('image seed\n');
    expect(read(path.join(v, 'cache/apt/pkgcache'))).toBe('image cache\n');
    expect(read(path.join(v, 'log/README'))).toBe('image log\n');
    for (const gone of ['lib/stray', 'tmp']) expect(fs.existsSync(path.join(v, gone)), gone).toBe(false);
    expect(read(path.join(v, 'lib/tabula/identity/machine-id'))).toBe('0123456789abcdef0123456789abcdef\n');
    expect(read(path.join(v, 'lib/tabula/state/agent.json'))).toBe('machine state\n');
    expect(read(path.join(v, 'log/journal/x/system.journal'))).toBe('journal\n');
    expect(read(path.join(v, 'home/ann/notes.txt'))).toBe('mine\n');
    // The image's own copy is never written.
    expect(read(path.join(factory, 'lib/dpkg/status'))).toBe('image dpkg\n');
  });

  it("rewrites a file that kept the image's size and time but not its bytes, and the image's mode", () => {
    const file = path.join(v, 'lib/dpkg/status');
    fs.writeFileSync(file, 'IMAGE DPKG\n'); // same size
    const t = fs.statSync(path.join(factory, 'lib/dpkg/status')).mtime;
    fs.utimesSync(file, t, t);
    fs.chmodSync(file, 0o666);
    expect(reset().code).toBe(0);
    expect(read(file)).toBe('image dpkg\n');
    expect(fs.statSync(file).mode & 0o777).toBe(fs.statSync(path.join(factory, 'lib/dpkg/status')).mode & 0o777);
  });

  it('does not follow a symlink planted in /var out of it', () => {
    const outside = path.join(dir, 'outside');
    w(path.join(outside, 'apt/pkgcache'), 'not /var\n');
    fs.rmSync(path.join(v, 'cache'), { recursive: true, force: true });
    fs.symlinkSync(outside, path.join(v, 'cache'));
    expect(reset().code).toBe(0);
    expect(fs.lstatSync(path.join(v, 'cache')).isDirectory()).toBe(true);
    expect(read(path.join(v, 'cache/apt/pkgcache'))).toBe('image cache\n');
    expect(read(path.join(outside, 'apt/pkgcache'))).toBe('not /var\n');
  });

  it("after a reimage drops Tabula's machine state too, keeping its identity", () => {
    w(path.join(v, 'lib/tabula/reset-on-boot'), '');
    expect(reset().code).toBe(0);
    expect(fs.existsSync(path.join(v, 'lib/tabula/state'))).toBe(false);
    expect(fs.existsSync(path.join(v, 'lib/tabula/reset-on-boot'))).toBe(false);
    expect(read(path.join(v, 'lib/tabula/identity/machine-id'))).toBe('0123456789abcdef0123456789abcdef\n');
  });

  it('ignores a kept path that climbs out of /var or is a pattern, and resets the rest', () => {
    w(path.join(root, 'usr/lib/tabula/boot/stateless.sh'), 'TABULA_KEEP_VAR="../etc lib/tabula /lib/stray lib/* log/journal"\n');
    const r = reset();
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain("ignoring kept path '../etc'");
    expect(r.err).toContain("ignoring kept path '/lib/stray'");
    expect(r.err).toContain("ignoring kept path 'lib/*'");
    expect(fs.existsSync(path.join(v, 'lib/stray'))).toBe(false);
    expect(read(path.join(v, 'lib/dpkg/status'))).toBe('image dpkg\n');
    expect(read(path.join(v, 'lib/tabula/state/agent.json'))).toBe('machine state\n');
  });

  it('leaves /var alone when the deployment has no Tabula or no factory /var', () => {
    fs.rmSync(path.join(root, 'usr/lib/tabula'), { recursive: true });
    let r = reset();
    expect(r.code).toBe(0);
    expect(r.err).toContain('Tabula is not installed in this deployment');
    expect(read(path.join(v, 'lib/stray/file'))).toBe('stray\n');
    fs.rmSync(factory, { recursive: true });
    r = reset();
    expect(r.err).toContain('the image has no /usr/share/factory/var');
  });
});
