// tabula-ostree-esp (assets/boot/usr/libexec/tabula/) run for real by a POSIX shell on an ostree
// /boot and an ESP laid out in a temp folder: how many tries a deployment new to the ESP gets. The
// image's /etc/kernel/tries is put in place in a private mount namespace (a tmpfs over /etc/kernel),
// so the machine's own /etc is never touched. The lab boots the script (test/lab/ostree-*.ts).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeIn as w } from '../fixtures/files';

const script = path.resolve(__dirname, '../../assets/boot/usr/libexec/tabula/tabula-ostree-esp');
const canMount = spawnSync('unshare', ['-rm', 'true']).status === 0;
const checksum = 'ab'.repeat(32);

let dir: string;

/** Runs the script with `tries` as the image's /etc/kernel/tries (null: no such file); returns the ESP's entry names. */
function copyEntries(tries: string | null) {
  const put = tries === null ? 'rm -f /etc/kernel/tries' : `printf '%s' "$1" > /etc/kernel/tries`;
  const r = spawnSync('unshare', ['-rm', 'sh', '-eu', '-c', `mkdir -p /etc/kernel; mount -t tmpfs none /etc/kernel; ${put}; "${script}" "${dir}/root/boot" "${dir}/esp"`, 'sh', tries ?? ''], { encoding: 'utf8' });
  return { code: r.status, err: r.stderr, entries: fs.readdirSync(path.join(dir, 'esp/loader/entries')).sort() };
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-ostree-esp-'));
  // What `ostree admin deploy` leaves: an entry naming its kernel, and the boot link to the deployment.
  const root = path.join(dir, 'root');
  w(path.join(root, 'boot/loader/entries/ostree-1-tabula.conf'), `title Tabula 2\nversion 1\nlinux /ostree/tabula-k1/vmlinuz\ninitrd /ostree/tabula-k1/initramfs.img\noptions root=LABEL=x ostree=/ostree/boot.1/tabula/b1/0\n`);
  w(path.join(root, 'boot/ostree/tabula-k1/vmlinuz'), 'kernel');
  w(path.join(root, 'boot/ostree/tabula-k1/initramfs.img'), 'initramfs');
  fs.mkdirSync(path.join(root, 'ostree/boot.1/tabula/b1'), { recursive: true });
  fs.symlinkSync(`../../../deploy/tabula/deploy/${checksum}.0`, path.join(root, 'ostree/boot.1/tabula/b1/0'));
  fs.mkdirSync(path.join(dir, 'esp/loader'), { recursive: true });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!canMount)('tabula-ostree-esp: tries of a new deployment', () => {
  it('gives a deployment new to the ESP three tries when the image says nothing', () => {
    const r = copyEntries(null);
    expect(r.code, r.err).toBe(0);
    expect(r.entries).toEqual([`tabula-ostree-${checksum}.0+3.conf`]);
    expect(fs.readFileSync(path.join(dir, 'esp/ostree/tabula-k1/vmlinuz'), 'utf8')).toBe('kernel');
  });

  it("takes the number of tries from the image's /etc/kernel/tries", () => {
    const r = copyEntries('1\n');
    expect(r.code, r.err).toBe(0);
    expect(r.entries).toEqual([`tabula-ostree-${checksum}.0+1.conf`]);
  });

  it('says so and keeps three tries when /etc/kernel/tries is not a number of tries', () => {
    for (const bad of ['0', 'many', '1;reboot', '-1', '100']) {
      fs.rmSync(path.join(dir, 'esp/loader/entries'), { recursive: true, force: true });
      const r = copyEntries(bad);
      expect(r.code, r.err).toBe(0);
      expect(r.err).toContain('/etc/kernel/tries holds');
      expect(r.entries).toEqual([`tabula-ostree-${checksum}.0+3.conf`]);
    }
  });
});
