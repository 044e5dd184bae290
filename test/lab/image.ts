// Images and disks for the virtual laptops: the cached Debian base (build-base.sh), a version of the
// Tabula image made from it (Tabula installed, the lab's user and keys), published with
// tabula-fleet, and a laptop disk made without loop devices: GPT with an ESP (systemd-boot and the
// boot entries Tabula writes) and the persistent disk (deployment 1 installed, /home, /var).
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writeBootEntries, STATE_LABEL } from '../../src-main/core/image/boot-entries';

const repo = path.resolve(__dirname, '../..');
const sh = (cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}) => execFileSync(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 64 << 20, ...opts });

/** Builds (or finds in the cache) the Debian base tree; returns its path. */
export function buildBase(log: (s: string) => void): string {
  const t0 = Date.now();
  const r = spawnSync(path.join(__dirname, 'build-base.sh'), [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`building the lab's Debian image failed (exit ${r.status}):\n${(r.stderr || '').split('\n').slice(-30).join('\n')}`);
  const base = r.stdout.trim().split('\n').at(-1)!;
  log(`base image ${path.basename(base)} ready in ${Math.round((Date.now() - t0) / 1000)} s`);
  return base;
}

export interface LabImageSettings {
  /** The lab's ssh public key (root and the test user log in with it). */
  sshPublicKey: string;
  /** Private keys the laptop uses for the NAS and the fleet server, by file name (image-wide, lab only). */
  keys: Record<string, string>;
  /** known_hosts line(s) for the NAS/fleet server as the guest sees it. */
  knownHosts: string;
  /** The Tabula config the image ships (/usr/share/defaults/tabula/config.json). */
  config: object;
  user: string;
}

/**
 * A version of the image: a copy of the base with Tabula installed (the Debian package; without
 * one, the build output and launchers where the package puts them) and the lab's
 * user, autologin and keys. `mutate` may change the tree (a broken image, a changed file).
 */
export function makeImageTree(base: string, dest: string, version: string, s: LabImageSettings & { deb: string | null }, mutate?: (tree: string) => void): string {
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  sh('cp', ['-a', base, dest]);
  fs.rmSync(path.join(dest, '.complete'), { force: true });
  // Device nodes are made by the kernel (devtmpfs) at boot; an image holds only files, folders, links.
  for (const d of ['dev', 'proc', 'sys', 'run', 'tmp']) {
    for (const n of fs.readdirSync(path.join(dest, d))) fs.rmSync(path.join(dest, d, n), { recursive: true, force: true });
  }
  const w = (rel: string, text: string, mode = 0o644) => {
    const f = path.join(dest, rel);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, text, { mode });
    fs.chmodSync(f, mode);
  };
  installTabula(dest, s.deb);

  // The image's identity: what `tabula status` shows as the running version.
  const osr = fs.readFileSync(path.join(dest, 'usr/lib/os-release'), 'utf8').split('\n').filter((l) => l && !/^(IMAGE_ID|IMAGE_VERSION)=/.test(l));
  w('usr/lib/os-release', [...osr, 'IMAGE_ID=tabula-lab', `IMAGE_VERSION=${version}`, ''].join('\n'));
  w('etc/hostname', 'laptop\n');
  // panic=1: a kernel panic (a broken image's init exiting, (f)) restarts at once into systemd-boot's next try.
  w('etc/kernel/cmdline', 'console=ttyS0,115200 panic=1\n');
  w('usr/share/defaults/tabula/config.json', JSON.stringify(s.config, null, 2) + '\n');
  // ssh refuses a key its own user could share: root's (the helper's fleet key) is 0600; the
  // person's NAS key is root's file that they may read (lab only; a real fleet uses per-user keys).
  for (const [name, key] of Object.entries(s.keys)) w(`usr/share/defaults/tabula/lab/${name}`, key, name.startsWith('fleet') ? 0o600 : 0o644);
  w('usr/share/defaults/tabula/lab/known_hosts', s.knownHosts, 0o644);

  // The lab's person: logged in on the console (an active local session, as polkit wants it).
  chroot(dest, 'useradd', ['-M', '-u', '1000', '-s', '/bin/bash', s.user]);
  chroot(dest, 'usermod', ['-p', '*', s.user]);
  w('etc/systemd/system/getty@tty1.service.d/autologin.conf', `[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin ${s.user} --noclear %I $TERM\n`);
  // The lab drives the laptop over ssh with its own key.
  w('etc/ssh/sshd_config.d/lab.conf', 'AuthorizedKeysFile /etc/ssh/lab_authorized_keys\nPermitRootLogin prohibit-password\nUseDNS no\n');
  w('etc/ssh/lab_authorized_keys', s.sshPublicKey.trim() + '\n');
  // The laptop's network: DHCP from qemu's user-mode network.
  w('etc/systemd/network/20-lab.network', '[Match]\nType=ether\n\n[Network]\nDHCP=ipv4\n');
  chroot(dest, 'systemctl', ['enable', 'systemd-networkd.service']);
  mutate?.(dest);
  return dest;
}

/**
 * What a boot of the virtual laptop does not need, each a measurable part of a boot under TCG,
 * where every process start and module load is slow. Boot-time only: nothing Tabula does depends
 * on them. A backend's image opts in (rsync-tree does; the ostree image once a walk has shown it there).
 */
export function leanBoot(tree: string) {
  // Loaded by udev for what the virtual machine claims to have (qemu's CPU model advertises AMD-V
  // and PowerNow!, q35's ICH9 its TCO watchdog), or by systemd-ssh-generator's AF_VSOCK probe:
  // ~1-3 s of processor each on the console. A laptop of this image uses none of them.
  // q35's own ICH9 parts that a laptop of this image has no use for: the SATA controller (no disk on
  // it: ahci probes its six empty ports), the LPC bridge and the SMBus; and cfg80211, which
  // systemd-networkd's query for the nl80211 family loads (Wi-Fi; its certificates parsed at each boot).
  // (blacklist: not loaded for a device's or a protocol's alias, which is how these come.)
  const blacklisted = ['kvm_amd', 'kvm_intel', 'kvm', 'powernow_k8', 'iTCO_wdt', 'iTCO_vendor_support', 'vmw_vmci', 'vsock', 'parport_pc', 'ppdev', 'lp', 'pcspkr', 'joydev', 'ahci', 'lpc_ich', 'i2c_i801', 'cfg80211'];
  fs.mkdirSync(path.join(tree, 'etc/modprobe.d'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'etc/modprobe.d/tabula-lab-boot.conf'), blacklisted.map((m) => `blacklist ${m}\n`).join(''));
  // Generators for what the laptop does not have: sshd over AF_VSOCK, root partitions found by GPT
  // type (the root is on the kernel command line, the ESP in fstab), hibernation, a TPM, SysV init
  // scripts (every package here has its own units), rc.local, offline updates. A generator of the
  // same name in /etc masks /usr's; systemd-bless-boot-generator (boot counting), fstab and getty stay.
  fs.mkdirSync(path.join(tree, 'etc/systemd/system-generators'), { recursive: true });
  for (const g of ['systemd-ssh-generator', 'systemd-gpt-auto-generator', 'systemd-hibernate-resume-generator', 'systemd-tpm2-generator', 'systemd-sysv-generator', 'systemd-rc-local-generator', 'systemd-system-update-generator']) {
    if (fs.existsSync(path.join(tree, 'usr/lib/systemd/system-generators', g))) fs.symlinkSync('/dev/null', path.join(tree, 'etc/systemd/system-generators', g));
  }
}

/** Tabula as the package installs it (or, without a package, its build output where the package puts it). */
function installTabula(tree: string, deb: string | null) {
  if (deb) {
    fs.copyFileSync(deb, path.join(tree, 'tmp/tabula.deb'));
    // The base's initramfs already holds this checkout's hook (its cache key): skip rebuilding it.
    // (The ostree laptop's base has dracut, not initramfs-tools: nothing to skip there.)
    const conf = path.join(tree, 'etc/initramfs-tools/update-initramfs.conf');
    const saved = fs.existsSync(conf) ? fs.readFileSync(conf, 'utf8') : null;
    if (saved !== null) fs.writeFileSync(conf, saved.replace(/^update_initramfs=.*$/m, 'update_initramfs=no'));
    const out = chroot(tree, 'dpkg', ['-i', '/tmp/tabula.deb']);
    if (saved !== null) {
      fs.writeFileSync(conf, saved);
      // The package's trigger asks initramfs-tools to rebuild the initramfs with its boot script.
      if (!/Processing triggers for initramfs-tools/.test(out)) throw new Error(`installing the package did not trigger update-initramfs:\n${out}`);
    }
    fs.rmSync(path.join(tree, 'tmp/tabula.deb'));
    return;
  }
  const lib = path.join(tree, 'usr/lib/tabula');
  fs.mkdirSync(lib, { recursive: true });
  sh('cp', ['-a', path.join(repo, 'build'), path.join(repo, 'bin'), path.join(repo, 'package.json'), lib]);
  for (const f of fs.readdirSync(path.join(lib, 'build/main'))) if (f.endsWith('.map')) fs.rmSync(path.join(lib, 'build/main', f));
  fs.symlinkSync('../lib/tabula/bin/tabula.js', path.join(tree, 'usr/bin/tabula'));
  fs.mkdirSync(path.join(tree, 'usr/libexec/tabula'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'usr/libexec/tabula/tabula-helper'), "#!/usr/bin/node\n'use strict';\nrequire('/usr/lib/tabula/build/main/helper.js');\n", { mode: 0o755 });
  fs.copyFileSync(path.join(repo, 'assets/polkit/org.tabula.helper.policy'), path.join(tree, 'usr/share/polkit-1/actions/org.tabula.helper.policy'));
  fs.mkdirSync(path.join(tree, 'usr/lib/systemd/user'), { recursive: true });
  fs.writeFileSync(
    path.join(tree, 'usr/lib/systemd/user/tabula-agent.service'),
    '[Unit]\nDescription=Tabula agent\n\n[Service]\nExecStart=/usr/bin/tabula agent\nRestart=on-failure\n\n[Install]\nWantedBy=default.target\n',
  );
  chroot(tree, 'systemctl', ['--global', 'enable', 'tabula-agent.service']);
  installBootIntegration(tree);
}

/** Without the package: the boot integration as the package installs it (assets/boot mirrors the tree). */
function installBootIntegration(tree: string) {
  sh('cp', ['-r', path.join(repo, 'assets/boot/usr'), tree]);
}

/** `npm run package:deb` (a fresh build of this checkout) into `outDir`; null where the packager is absent. */
export function buildDeb(outDir: string): string | null {
  const script = path.join(repo, 'scripts/package-deb.mjs');
  if (!fs.existsSync(script)) return null;
  // Always built here (~10 s): a build/ left from another checkout or an older commit would go into the images unseen.
  sh('npm', ['run', '-s', 'build'], { cwd: repo });
  const r = spawnSync(process.execPath, [script, '--out', outDir], { cwd: repo, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm run package:deb failed: ${(r.stderr || r.stdout).trim()}`);
  const debs = fs.readdirSync(outDir).filter((f) => /^tabula_.*\.deb$/.test(f));
  if (!debs.length) throw new Error(`npm run package:deb made no .deb in ${outDir}`);
  return path.join(outDir, debs[0]!);
}

function chroot(tree: string, cmd: string, args: string[]): string {
  const r = spawnSync('chroot', [tree, cmd, ...args], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
  if (r.status !== 0) throw new Error(`chroot ${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** tabula-fleet publish (rsync-tree): signed manifest + channel in serverDir. */
export function publishRsyncTree(tree: string, version: string, serverDir: string, key: string) {
  const r = spawnSync(process.execPath, [path.join(repo, 'bin/tabula-fleet.js'), 'publish', '--backend', 'rsync-tree', '--tree', tree, '--version', version, '--channel', 'stable', '--key', key, '--out', serverDir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tabula-fleet publish ${version} failed: ${r.stderr || r.stdout}`);
}

const MiB = 1024 * 1024;
const ESP_MIB = 256;
const STATE_MIB = 6144;

/**
 * The laptop's disk, as an installer would make it: deployment `version` (from the published
 * image, with its signed manifest) on the persistent disk, `next` pointing at it, an empty home for
 * `user`, and an ESP with systemd-boot and the boot entry Tabula writes for it.
 */
export function makeLaptopDisk(o: { dir: string; base: string; serverDir: string; version: string; user: string }): string {
  const stage = path.join(o.dir, 'disk-stage');
  fs.rmSync(stage, { recursive: true, force: true });
  const state = path.join(stage, 'state');
  const tabula = path.join(state, 'var/lib/tabula');
  const dep = path.join(tabula, 'deployments', o.version);
  fs.mkdirSync(dep, { recursive: true });
  const img = path.join(o.serverDir, 'images', o.version);
  // Hard links: mkfs.ext4 -d copies the content, the staging costs nothing.
  sh('cp', ['-al', path.join(img, 'tree'), path.join(dep, 'tree')]);
  for (const f of ['manifest.json', 'manifest.json.sig']) fs.copyFileSync(path.join(img, f), path.join(dep, f));
  fs.symlinkSync(`deployments/${o.version}`, path.join(tabula, 'next'));
  fs.mkdirSync(path.join(state, 'home', o.user), { recursive: true, mode: 0o700 });
  fs.chownSync(path.join(state, 'home', o.user), 1000, 1000);

  const esp = path.join(stage, 'esp');
  fs.mkdirSync(path.join(esp, 'EFI/BOOT'), { recursive: true });
  fs.copyFileSync(path.join(o.base, 'usr/lib/systemd/boot/efi/systemd-bootx64.efi'), path.join(esp, 'EFI/BOOT/BOOTX64.EFI'));
  fs.mkdirSync(path.join(esp, 'loader'), { recursive: true });
  fs.writeFileSync(path.join(esp, 'loader/loader.conf'), 'timeout 0\neditor no\nauto-entries no\nauto-firmware no\n');
  // The boot loader's random seed, as `bootctl install` writes it (32 bytes): systemd-boot passes it
  // on to the kernel and rewrites it at every boot (the image masks the OS-side refresh: customize-base.sh).
  fs.writeFileSync(path.join(esp, 'loader/random-seed'), crypto.randomBytes(32), { mode: 0o600 });
  writeBootEntries({ esp, deploymentsDir: path.join(tabula, 'deployments'), versions: [o.version] });

  const espImg = path.join(o.dir, 'esp.img');
  const stateImg = path.join(o.dir, 'state.img');
  const disk = path.join(o.dir, 'disk.img');
  for (const f of [espImg, stateImg, disk]) fs.rmSync(f, { force: true });
  sh('mkfs.vfat', ['-C', '-F', '32', '-n', 'ESP', espImg, String(ESP_MIB * 1024)]);
  sh('mcopy', ['-s', '-i', espImg, ...fs.readdirSync(esp).map((f) => path.join(esp, f)), '::/']);
  sh('mkfs.ext4', ['-q', '-L', STATE_LABEL, '-d', state, stateImg, `${STATE_MIB}M`]);
  fs.closeSync(fs.openSync(disk, 'w'));
  fs.truncateSync(disk, (2 + ESP_MIB + STATE_MIB) * MiB);
  sh('sgdisk', ['-o', '-n1:2048:+' + ESP_MIB + 'M', '-t1:ef00', '-c1:esp', `-n2:${2048 + ESP_MIB * 2048}:+${STATE_MIB}M`, '-t2:8300', `-c2:${STATE_LABEL}`, disk]);
  sh('dd', [`if=${espImg}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
  sh('dd', [`if=${stateImg}`, `of=${disk}`, 'bs=1M', `seek=${1 + ESP_MIB}`, 'conv=notrunc,sparse', 'status=none']);
  fs.rmSync(espImg);
  fs.rmSync(stateImg);
  fs.rmSync(stage, { recursive: true, force: true });
  return disk;
}

/** The ESP's files, read from the disk image with mtools (no mount): e.g. the boot entries and their counters. */
export function listEsp(disk: string, dir: string): string[] {
  const r = spawnSync('mdir', ['-b', '-i', `${disk}@@1M`, `::${dir}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n').filter(Boolean).map((l) => path.posix.basename(l.trim())) : [];
}
