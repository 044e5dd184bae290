// The boot entries tabula-helper writes for rsync-tree deployments (what systemd-boot reads). The
// lab (test/lab) boots them for real; this checks the files themselves: the `next` deployment
// ranks first, a new entry counts its tries, an existing entry keeps its counter or blessing,
// deployments with the same kernel share one copy on the ESP, and a version systemd-boot gave
// up on is reported as failed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { failedBoot, findKernel, readBootEntries, writeBootEntries } from '../../src-main/core/image/boot-entries';

let dir: string;
let esp: string;
let deployments: string;

function deployment(version: string, kernel = 'kernel A') {
  const tree = path.join(deployments, version, 'tree');
  fs.mkdirSync(path.join(tree, 'boot'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'etc/kernel'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'boot/vmlinuz-6.12.1-amd64'), kernel);
  fs.writeFileSync(path.join(tree, 'boot/initrd.img-6.12.1-amd64'), `initrd for ${kernel}`);
  // An image may add console options, but never choose the root or the deployment.
  fs.writeFileSync(path.join(tree, 'etc/kernel/cmdline'), 'console=ttyS0 root=/dev/evil tabula.deployment=9 quiet\n');
}

const entry = (file: string) => fs.readFileSync(path.join(esp, 'loader/entries', file), 'utf8');
const field = (text: string, key: string) => new RegExp(`^${key} (.*)$`, 'm').exec(text)?.[1];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-boot-'));
  esp = path.join(dir, 'efi');
  deployments = path.join(dir, 'deployments');
  fs.mkdirSync(path.join(esp, 'loader'), { recursive: true });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('boot entries', () => {
  it('writes a counted entry per deployment, the next one ranked first, with the boot path root', () => {
    deployment('1');
    deployment('2');
    writeBootEntries({ esp, deploymentsDir: deployments, versions: ['1'], blessed: true });
    const entries = writeBootEntries({ esp, deploymentsDir: deployments, versions: ['2', '1'] });
    expect(entries.map((e) => e.file).sort()).toEqual(['tabula-1.conf', 'tabula-2+3.conf']);
    const two = entry('tabula-2+3.conf');
    expect(field(two, 'options')).toBe('root=LABEL=tabula-state rw console=ttyS0 quiet tabula.deployment=2');
    expect(Number(field(two, 'version'))).toBeGreaterThan(Number(field(entry('tabula-1.conf'), 'version')));
    expect(field(two, 'sort-key')).toBe('tabula');
    // Same kernel and initramfs: one copy on the ESP.
    expect(fs.readdirSync(path.join(esp, 'tabula'))).toHaveLength(1);
    expect(fs.readFileSync(path.join(esp, field(two, 'linux')!), 'utf8')).toBe('kernel A');
  });

  it('keeps a counter systemd-boot has decremented, re-ranks on rollback, drops what is no longer kept', () => {
    deployment('1');
    deployment('2', 'kernel B');
    deployment('3');
    writeBootEntries({ esp, deploymentsDir: deployments, versions: ['2', '1'] });
    // systemd-boot tried 2 once: tabula-2+3.conf became tabula-2+2-1.conf.
    fs.renameSync(path.join(esp, 'loader/entries/tabula-2+3.conf'), path.join(esp, 'loader/entries/tabula-2+2-1.conf'));
    const entries = writeBootEntries({ esp, deploymentsDir: deployments, versions: ['1', '2'] });
    expect(entries.find((e) => e.version === '2')).toMatchObject({ file: 'tabula-2+2-1.conf', triesLeft: 2, triesDone: 1 });
    expect(Number(field(entry('tabula-1+3.conf'), 'version'))).toBeGreaterThan(Number(field(entry('tabula-2+2-1.conf'), 'version')));
    writeBootEntries({ esp, deploymentsDir: deployments, versions: ['3', '1'] });
    expect(readBootEntries(esp).map((e) => e.version).sort()).toEqual(['1', '3']);
    // Kernel B was only 2's: its copy is gone.
    expect(fs.readdirSync(path.join(esp, 'tabula'))).toHaveLength(1);
  });

  it('reports a staged version systemd-boot gave up on, and only that', () => {
    deployment('2');
    deployment('3');
    writeBootEntries({ esp, deploymentsDir: deployments, versions: ['3', '2'] });
    expect(failedBoot(esp, '3', '3')).toBeNull();
    fs.renameSync(path.join(esp, 'loader/entries/tabula-3+3.conf'), path.join(esp, 'loader/entries/tabula-3+1-2.conf'));
    expect(failedBoot(esp, '3', '2')).toBeNull(); // still has a try left: a power cut, not a failure
    fs.renameSync(path.join(esp, 'loader/entries/tabula-3+1-2.conf'), path.join(esp, 'loader/entries/tabula-3+0-3.conf'));
    expect(failedBoot(esp, '3', '2')).toBe('3');
  });

  it("gives a new entry the image's own number of tries (/etc/kernel/tries), and 3 for anything but 1–99", () => {
    const tries = (version: string, content: string | null) => {
      deployment(version);
      const f = path.join(deployments, version, 'tree/etc/kernel/tries');
      if (content !== null) fs.writeFileSync(f, content);
      return writeBootEntries({ esp, deploymentsDir: deployments, versions: [version] })[0]!.triesLeft;
    };
    expect(tries('1', '1\n')).toBe(1);
    expect(tries('2', ' 12 ')).toBe(12);
    expect(tries('3', null)).toBe(3);
    expect(tries('4', '0')).toBe(3);
    expect(tries('5', 'one')).toBe(3);
    expect(tries('6', '100')).toBe(3);
    deployment('7');
    fs.mkdirSync(path.join(deployments, '7/tree/etc/kernel/tries'));
    expect(writeBootEntries({ esp, deploymentsDir: deployments, versions: ['7'] })[0]!.triesLeft).toBe(3);
  });

  it('refuses an image without a kernel and initramfs, by name', () => {
    fs.mkdirSync(path.join(deployments, '4/tree/boot'), { recursive: true });
    expect(() => findKernel(path.join(deployments, '4/tree'))).toThrow(/no kernel with an initramfs/);
  });
});
