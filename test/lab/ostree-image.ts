// The ostree laptop's images and disk. A fleet admin's path, end to end: the Debian 13 base with
// Debian's ostree boot integration (ostree-build-base.sh), Tabula's package and the lab's user in it
// (image.ts makeImageTree), turned into an ostree tree (kernel and initramfs in
// /usr/lib/modules/<kver>, /etc as /usr/etc, /home and friends in /var), committed by
// `tabula-fleet publish --backend ostree` into a GPG-signed archive repo, and installed the way an
// installer does: `ostree admin init-fs`, `os-init`, a pull from the signed repo, `admin deploy` with
// the kernel arguments, ostree's boot entries copied to the ESP by the package's tabula-ostree-esp.
// The disk is made without loop devices (mkfs.ext4 -d, mtools, dd into a GPT image).
// Everything before the first boot is cached under a hash of its inputs (base, package, this file).
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { leanBoot, makeImageTree, type LabImageSettings } from './image';

const repo = path.resolve(__dirname, '../..');
const sh = (cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
/**
 * A command at the lowest priority that leaves the lab's event loop free: images 2 and 3 are made
 * while the laptop boots (the guest's processor goes first), and `signal` stops them when the walk ends.
 */
const shLow = (cmd: string, args: string[], signal?: AbortSignal) =>
  new Promise<string>((resolve, reject) =>
    execFile('nice', ['-n', '19', cmd, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, signal }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')} failed: ${(stderr || err.message).trim().slice(-2000)}`)) : resolve(stdout),
    ),
  );

export const OS_NAME = 'tabula';
export const OSTREE_REF = 'tabula/stable/x86_64';
export const ROOT_LABEL = 'tabula-ostree';
/** The images the ostree laptop walks through: 1 installed, 2 the update, 3 broken (never reaches its target). */
export const OSTREE_LAB_VERSIONS = ['1', '2', '3'] as const;
/** Where the laptop finds the fleet's ostree repo (a guestfwd to the lab's HTTP server). */
export const REPO_ADDR = '10.0.2.102';
const MiB = 1024 * 1024;
const ESP_MIB = 256;
const ROOT_MIB = 6144;
/**
 * The laptop's kernel arguments (later deployments inherit them). panic=1: a broken image's panic
 * restarts at once, and systemd-boot tries the next entry. systemd.condition_needs_update=0: the
 * image is complete as built (linker cache, users, journal catalog), but its /etc and /var start
 * fresh at every boot, without the .updated stamps, so ldconfig, the journal catalog and
 * systemd-update-done ran at every boot (10-40 s here) before sysinit.target.
 */
const KARGS = [`root=LABEL=${ROOT_LABEL}`, 'rw', 'console=ttyS0,115200', 'panic=1', 'systemd.condition_needs_update=0'];

/** Builds (or finds in the cache) the ostree laptop's Debian base; returns its path. */
export function buildOstreeBase(log: (s: string) => void): string {
  const t0 = Date.now();
  const r = spawnSync(path.join(__dirname, 'ostree-build-base.sh'), [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`building the ostree laptop's Debian base failed (exit ${r.status}):\n${(r.stderr || '').split('\n').slice(-30).join('\n')}`);
  const base = r.stdout.trim().split('\n').at(-1)!;
  log(`ostree base ${path.basename(base)} ready in ${Math.round((Date.now() - t0) / 1000)} s`);
  return base;
}

/**
 * Starts building the ostree base in the background at the lowest priority (run-lab.ts: beside the
 * rsync-tree base on a machine that has neither); resolves when it ends, its output in `logFile`.
 * Its outcome is buildOstreeBase's to tell, called once this has ended: it finds the base made, or
 * builds it again and says why it failed.
 */
export function startOstreeBase(logFile: string): Promise<void> {
  const out = fs.openSync(logFile, 'w');
  const child = spawn('nice', ['-n', '19', path.join(__dirname, 'ostree-build-base.sh')], { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  return new Promise((resolve) => {
    child.once('error', () => resolve());
    child.once('exit', () => resolve());
  });
}

/**
 * Makes the ostree laptop's images and disk in the cache (ostree-prepare.ts) in a process of its own
 * at the idle scheduling class (SCHED_IDLE: it runs when nothing else, not even a nice-19 build,
 * wants the processor); `done` resolves when it ends, its output in `logFile`. `hurry` moves it and
 * every process it started back to the normal class (the ostree walk's turn has come and waits for
 * it: on a busy machine the idle class may not run at all). As with the base, the outcome is the
 * walk's to tell: it finds everything made, or makes what is missing and says why.
 */
export function prepareOstreeLab(deb: string | null, logFile: string): { done: Promise<void>; hurry: () => void } {
  const out = fs.openSync(logFile, 'w');
  const t0 = Date.now();
  const child = spawn('chrt', ['--idle', '0', process.execPath, path.join(repo, 'node_modules/vite-node/vite-node.mjs'), path.join(__dirname, 'ostree-prepare.ts'), deb ?? ''], { cwd: repo, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  let ended = false;
  const done = new Promise<void>((resolve) => {
    const end = (how: string) => {
      ended = true;
      fs.appendFileSync(logFile, `ended (${how}) after ${Math.round((Date.now() - t0) / 1000)} s\n`);
      resolve();
    };
    child.once('error', (err) => end(err.message));
    child.once('exit', (code, signal) => end(signal ?? `exit ${code}`));
  });
  /** The child and every process it started (ps: pid, parent). */
  const tree = (root: number) => {
    const children = new Map<number, number[]>();
    for (const line of sh('ps', ['-e', '-o', 'pid=,ppid=']).trim().split('\n')) {
      const [pid, ppid] = line.trim().split(/\s+/).map(Number) as [number, number];
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    }
    const all = [root];
    for (let i = 0; i < all.length; i++) all.push(...(children.get(all[i]!) ?? []));
    return all;
  };
  const hurry = () => {
    if (ended || !child.pid) return;
    for (const pid of tree(child.pid)) spawnSync('chrt', ['--all-tasks', '--other', '--pid', '0', String(pid)], { stdio: 'ignore' });
    fs.appendFileSync(logFile, `moved to the normal scheduling class after ${Math.round((Date.now() - t0) / 1000)} s (the ostree walk waits for it)\n`);
    // Bounded: quiet, everything takes ~3 min; one stuck step must not hold the lab. The walk then
    // makes what is missing (a cache entry counts only once complete).
    const bound = setTimeout(() => {
      if (ended || !child.pid) return;
      fs.appendFileSync(logFile, `stopped: not done 15 minutes after the ostree walk's turn came\n`);
      for (const pid of tree(child.pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }, 15 * 60_000);
    void done.then(() => clearTimeout(bound));
  };
  return { done, hurry };
}

export interface GpgSigner {
  homedir: string;
  keyId: string;
  /** The public key, as the image ships it (image.gpgKeyring). */
  publicKeyFile: string;
}

/** The fleet's ostree signing key (GPG: Debian's ostree has no ed25519 `ostree sign`). */
export function makeGpgKey(dir: string): GpgSigner {
  const homedir = path.join(dir, 'gnupg');
  fs.mkdirSync(homedir, { recursive: true, mode: 0o700 });
  sh('gpg', ['--homedir', homedir, '--batch', '--passphrase', '', '--quick-gen-key', 'Tabula lab fleet <fleet@tabula.invalid>', 'ed25519', 'sign', 'never']);
  const keyId = /^fpr:+([0-9A-F]{40}):/m.exec(sh('gpg', ['--homedir', homedir, '--batch', '--with-colons', '--list-secret-keys']))![1]!;
  const publicKeyFile = path.join(dir, 'fleet.gpg');
  fs.writeFileSync(publicKeyFile, execFileSync('gpg', ['--homedir', homedir, '--batch', '--export', keyId]));
  return { homedir, keyId, publicKeyFile };
}

/**
 * An ostree tree from an image tree, as ostree wants one: kernel and initramfs beside the modules,
 * /etc as /usr/etc (the deployment's /etc is made from it, and is transient: prepare-root.conf),
 * the person's and the admin's writable places under /var, /sysroot and /ostree for the boot.
 * The image's /var goes to /usr/share/factory/var (the machine's /var is reset to it at every boot)
 * and to `varSeed`, which seeds the machine's /var at install.
 */
export async function toOstreeTree(tree: string, varSeed: string, signal?: AbortSignal): Promise<void> {
  const kver = fs.readdirSync(path.join(tree, 'usr/lib/modules'))[0]!;
  const mod = path.join(tree, 'usr/lib/modules', kver);
  fs.copyFileSync(path.join(tree, 'boot', `vmlinuz-${kver}`), path.join(mod, 'vmlinuz'));
  fs.copyFileSync(path.join(tree, 'boot', `initrd.img-${kver}`), path.join(mod, 'initramfs.img'));
  for (const f of fs.readdirSync(path.join(tree, 'boot'))) fs.rmSync(path.join(tree, 'boot', f), { recursive: true, force: true });
  // The ESP, mounted for the whole boot: tabula-ostree-esp copies ostree's entries there at
  // shutdown, and a stop step that touches an automount whose idle timer expired hangs (systemd
  // issue 22528: the autofs request waits for a mount job shutdown never runs).
  fs.mkdirSync(path.join(tree, 'efi'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'etc/fstab'), 'PARTLABEL=esp /efi vfat umask=0077,nofail 0 0\n');
  fs.renameSync(path.join(tree, 'etc'), path.join(tree, 'usr/etc'));
  // root's dot files go with its home into /var/roothome; the other folders are empty in Debian.
  if (fs.existsSync(path.join(tree, 'root'))) await shLow('cp', ['-a', path.join(tree, 'root'), path.join(tree, 'var/roothome')], signal);
  // The image's /var as the factory default (file-hierarchy(7)): the package's dracut module resets
  // the machine's /var to it at every boot (ostree itself never writes /var).
  fs.mkdirSync(path.join(tree, 'usr/share/factory'), { recursive: true });
  fs.renameSync(path.join(tree, 'var'), path.join(tree, 'usr/share/factory/var'));
  fs.mkdirSync(path.join(tree, 'var'));
  fs.rmSync(varSeed, { recursive: true, force: true });
  await shLow('cp', ['-a', path.join(tree, 'usr/share/factory/var'), varSeed], signal);
  for (const [link, target] of [['home', 'var/home'], ['root', 'var/roothome'], ['opt', 'var/opt'], ['srv', 'var/srv'], ['mnt', 'var/mnt'], ['media', 'run/media'], ['usr/local', '../var/usrlocal']] as const) {
    fs.rmSync(path.join(tree, link), { recursive: true, force: true });
    fs.symlinkSync(target, path.join(tree, link));
  }
  fs.mkdirSync(path.join(tree, 'sysroot'));
  fs.symlinkSync('sysroot/ostree', path.join(tree, 'ostree'));
}

/** `tabula-fleet publish --backend ostree`: the commit and the summary, GPG-signed. */
export async function publishOstreeImage(tree: string, version: string, serverDir: string, key: string, gpg: GpgSigner, signal?: AbortSignal): Promise<string> {
  const out = await shLow(
    process.execPath,
    [path.join(repo, 'bin/tabula-fleet.js'), 'publish', '--backend', 'ostree', '--tree', tree, '--version', version, '--channel', 'stable', '--key', key, '--out', serverDir, '--gpg-key', gpg.keyId, '--gpg-homedir', gpg.homedir, '--ref', OSTREE_REF],
    signal,
  );
  return /as ([0-9a-f]{64})/.exec(out)![1]!;
}

/**
 * The laptop's disk as an installer makes it: an ostree sysroot with `commit` deployed (its kernel
 * arguments naming the root by label), the remote pointing at the fleet's repo as the laptop sees
 * it, /var seeded from the image with an empty home for `user`, and an ESP with systemd-boot and
 * the entries ostree wrote, copied there by the package's own tabula-ostree-esp.
 */
export function makeOstreeLaptopDisk(o: { dir: string; base: string; serverDir: string; commit: string; gpg: GpgSigner; varSeed: string; user: string; url: string }): string {
  const stage = path.join(o.dir, 'disk-stage');
  fs.rmSync(stage, { recursive: true, force: true });
  const sysroot = path.join(stage, 'root');
  fs.mkdirSync(sysroot, { recursive: true });
  const repoArg = `--repo=${path.join(sysroot, 'ostree/repo')}`;
  sh('ostree', ['admin', 'init-fs', '--modern', sysroot]);
  sh('ostree', ['admin', 'os-init', `--sysroot=${sysroot}`, OS_NAME]);
  // ostree has no systemd-boot backend: it writes plain BLS entries (tabula-ostree-esp copies them).
  sh('ostree', [repoArg, 'config', 'set', 'sysroot.bootloader', 'none']);
  sh('ostree', [repoArg, 'remote', 'add', '--set=gpg-verify=true', '--set=gpg-verify-summary=true', OS_NAME, o.url, OSTREE_REF]);
  sh('ostree', [repoArg, 'remote', 'gpg-import', OS_NAME, '-k', o.gpg.publicKeyFile]);
  // The install medium's copy of the repo: signatures checked against the key the image trusts.
  sh('ostree', [repoArg, 'pull-local', '--gpg-verify', `--remote=${OS_NAME}`, path.join(o.serverDir, 'repo'), o.commit]);
  sh('ostree', [repoArg, 'refs', '--create', `${OS_NAME}:${OSTREE_REF}`, o.commit]);
  sh('ostree', ['admin', 'deploy', `--sysroot=${sysroot}`, `--os=${OS_NAME}`, ...KARGS.map((k) => `--karg=${k}`), `${OS_NAME}:${OSTREE_REF}`]);
  // The machine's /var: the image's, then the person's home (ostree never writes /var).
  const stateVar = path.join(sysroot, 'ostree/deploy', OS_NAME, 'var');
  sh('cp', ['-a', `${o.varSeed}/.`, stateVar]);
  for (const d of ['home', 'roothome', 'opt', 'srv', 'mnt', 'usrlocal']) fs.mkdirSync(path.join(stateVar, d), { recursive: true });
  fs.chmodSync(path.join(stateVar, 'roothome'), 0o700);
  const home = path.join(stateVar, 'home', o.user);
  fs.mkdirSync(home, { mode: 0o700 });
  fs.chownSync(home, 1000, 1000);

  const esp = path.join(stage, 'esp');
  fs.mkdirSync(path.join(esp, 'EFI/BOOT'), { recursive: true });
  fs.copyFileSync(path.join(o.base, 'usr/lib/systemd/boot/efi/systemd-bootx64.efi'), path.join(esp, 'EFI/BOOT/BOOTX64.EFI'));
  fs.mkdirSync(path.join(esp, 'loader'), { recursive: true });
  fs.writeFileSync(path.join(esp, 'loader/loader.conf'), 'timeout 0\neditor no\nauto-entries no\nauto-firmware no\n');
  sh(path.join(repo, 'assets/boot/usr/libexec/tabula/tabula-ostree-esp'), [path.join(sysroot, 'boot'), esp]);
  const disk = assembleDisk(o.dir, esp, sysroot);
  removeSysroot(stage);
  return disk;
}

/** rm -rf for a folder holding an ostree sysroot: ostree makes each deployment immutable (chattr +i). */
function removeSysroot(dir: string): void {
  if (!fs.existsSync(dir)) return;
  sh('find', [dir, '-xdev', '-type', 'd', '-path', '*/ostree/deploy/*/deploy/*', '-prune', '-exec', 'chattr', '-i', '{}', '+']);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** GPT disk image: ESP (FAT, by mtools) and root (ext4, mkfs.ext4 -d), no loop devices. */
function assembleDisk(dir: string, espDir: string, rootDir: string): string {
  const espImg = path.join(dir, 'esp.img');
  const rootImg = path.join(dir, 'root.img');
  const disk = path.join(dir, 'disk.img');
  for (const f of [espImg, rootImg, disk]) fs.rmSync(f, { force: true });
  sh('mkfs.vfat', ['-C', '-F', '32', '-n', 'ESP', espImg, String(ESP_MIB * 1024)]);
  sh('mcopy', ['-s', '-i', espImg, ...fs.readdirSync(espDir).map((f) => path.join(espDir, f)), '::/']);
  sh('mkfs.ext4', ['-q', '-L', ROOT_LABEL, '-d', rootDir, rootImg, `${ROOT_MIB}M`]);
  fs.closeSync(fs.openSync(disk, 'w'));
  fs.truncateSync(disk, (2 + ESP_MIB + ROOT_MIB) * MiB);
  sh('sgdisk', ['-o', `-n1:2048:+${ESP_MIB}M`, '-t1:ef00', '-c1:esp', `-n2:${2048 + ESP_MIB * 2048}:+${ROOT_MIB}M`, '-t2:8304', `-c2:${ROOT_LABEL}`, disk]);
  sh('dd', [`if=${espImg}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
  sh('dd', [`if=${rootImg}`, `of=${disk}`, 'bs=1M', `seek=${1 + ESP_MIB}`, 'conv=notrunc,sparse', 'status=none']);
  fs.rmSync(espImg);
  fs.rmSync(rootImg);
  return disk;
}

export interface OstreeLab {
  gpg: GpgSigner;
  fleetKey: string;
  /**
   * Version `v` once published: its commit, and the fleet's server right after it was published (its
   * ref and summary at `v`), as hard links: copy it (`cp -al`) before serving it; publish and refresh
   * replace files, never write into them. Image 1 is ready at once; 2 and 3 are made while the laptop boots.
   */
  ready: (v: string) => Promise<{ server: string; commit: string }>;
  /** Stops making the images not yet made (the walk is over). */
  stop: () => void;
  /** Resolves once every image is made (or failed) and the work folder is gone. */
  settled: Promise<void>;
  sshKey: string;
  /** The NAS's keys the images carry (host_ed25519, client_ed25519): give them to the NAS's sshd (`startSshServer({ keys })`). */
  nasKeys: string;
  /** The pristine laptop disk with image 1 installed; copy it before booting. */
  disk: string;
}

/** What each lab version changes in the image the package made (image 1 is that image). */
function versionTree(tree: string, v: string): void {
  const osRelease = path.join(tree, 'usr/lib/os-release');
  fs.writeFileSync(osRelease, fs.readFileSync(osRelease, 'utf8').replace(/^IMAGE_VERSION=.*$/m, `IMAGE_VERSION=${v}`));
  if (v === '2') fs.writeFileSync(path.join(tree, 'usr/share/doc/tabula-lab-image-2'), 'new in image 2\n');
  // Image 3 never reaches its target: its systemd exits, the kernel panics and restarts (panic=1).
  if (v === '3') fs.writeFileSync(path.join(tree, 'usr/lib/systemd/systemd'), '#!/bin/sh\necho "image 3: broken on purpose" >&2\nexit 1\n', { mode: 0o755 });
}

/** The lab's keys (loopback only), made once and kept: the images they are baked into stay valid. */
function labKeys(dir: string): { gpg: GpgSigner; fleetKey: string; fleetPub: string; sshKey: string; nasKeys: string } {
  if (!fs.existsSync(path.join(dir, '.complete'))) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const gpg = makeGpgKey(dir);
    fs.writeFileSync(path.join(dir, 'gpg-key-id'), gpg.keyId + '\n');
    sh(process.execPath, [path.join(repo, 'bin/tabula-fleet.js'), 'keygen', '--out', path.join(dir, 'fleet')]);
    sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'tabula-lab', '-f', path.join(dir, 'lab-key')]);
    fs.writeFileSync(path.join(dir, '.complete'), '');
  }
  // The NAS's host key and the person's key for it: the images name the NAS ((b): a first login restores the home).
  const nasKeys = path.join(dir, 'nas');
  if (!fs.existsSync(path.join(nasKeys, '.complete'))) {
    fs.rmSync(nasKeys, { recursive: true, force: true });
    fs.mkdirSync(nasKeys);
    for (const k of ['host_ed25519', 'client_ed25519']) sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'tabula-lab-nas', '-f', path.join(nasKeys, k)]);
    fs.writeFileSync(path.join(nasKeys, '.complete'), '');
  }
  return {
    gpg: { homedir: path.join(dir, 'gnupg'), keyId: fs.readFileSync(path.join(dir, 'gpg-key-id'), 'utf8').trim(), publicKeyFile: path.join(dir, 'fleet.gpg') },
    fleetKey: path.join(dir, 'fleet.key'),
    fleetPub: fs.readFileSync(path.join(dir, 'fleet.pub'), 'utf8').trim(),
    sshKey: path.join(dir, 'lab-key'),
    nasKeys,
  };
}

const hashOf = (...parts: (string | Buffer)[]) => {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
};

/**
 * Images 1–3 published to a signed repo and a laptop disk with 1 installed, each cached under
 * `cache` by a hash of its inputs: an image by the base, the package's content, the code that makes
 * and publishes its tree, the settings and the image before it (`ostree-image-<hash>/`: the server
 * as that version left it, and the commit); the disk by image 1 and the code that installs it
 * (`ostree-disk-<hash>/`). A package change rebuilds the three images (image 1's tree is made once,
 * 2 and 3 are copies of it with their changes) and the disk; a change to the disk's code, the disk only.
 * Resolves once image 1 and the disk are there; images 2 and 3 are made after it, at a low priority
 * while the lab goes on (the laptop's first boot), each awaited by `ready` where a scenario needs it.
 */
export async function buildOstreeLab(o: {
  cache: string;
  base: string;
  deb: string | null;
  user: string;
  /** The NAS's address as the laptop sees it (its known_hosts entry). */
  nasAddr: string;
  /** The image's config layer; `nasKey` and `knownHosts` are where the image keeps the NAS's key and host key. */
  config: (lab: { gpgKeyring: string; fleetPub: string; nasKey: string; knownHosts: string }) => object;
  log: (s: string) => void;
}): Promise<OstreeLab> {
  const keys = labKeys(path.join(o.cache, 'ostree-lab-keys'));
  const nasKey = (f: string) => fs.readFileSync(path.join(keys.nasKeys, f), 'utf8');
  const settings: LabImageSettings & { deb: string | null } = {
    deb: o.deb,
    user: o.user,
    sshPublicKey: fs.readFileSync(`${keys.sshKey}.pub`, 'utf8'),
    keys: { 'nas-key': nasKey('client_ed25519') },
    knownHosts: `${o.nasAddr} ${nasKey('host_ed25519.pub').trim()}\n`,
    config: o.config({ gpgKeyring: '/usr/share/defaults/tabula/fleet.gpg', fleetPub: keys.fleetPub, nasKey: '/usr/share/defaults/tabula/lab/nas-key', knownHosts: '/usr/share/defaults/tabula/lab/known_hosts' }),
  };
  const code = [makeImageTree, toOstreeTree, versionTree, publishOstreeImage, labImage].map(String).join('\n');
  // The package by what it installs (its path is a fresh temp folder every run).
  let key = hashOf(o.base, o.deb ? debContentHash(o.deb) : 'build output', fs.readFileSync(path.join(__dirname, 'image.ts')), code, JSON.stringify({ ...settings, deb: null }), keys.gpg.keyId);
  const dirs: Record<string, string> = {};
  for (const v of OSTREE_LAB_VERSIONS) dirs[v] = path.join(o.cache, `ostree-image-${(key = hashOf(key, v))}`);
  const complete = (v: string) => fs.existsSync(path.join(dirs[v]!, '.complete'));
  const work = path.join(o.cache, 'ostree-lab-work');
  const stop = new AbortController();
  let imageTree = '';
  if (OSTREE_LAB_VERSIONS.some((v) => !complete(v))) {
    const t0 = Date.now();
    removeSysroot(work);
    imageTree = labImage(o.base, path.join(work, 'image'), settings, keys.gpg);
    o.log(`image tree made from the base and the package in ${Math.round((Date.now() - t0) / 1000)} s`);
  }
  const build = async (v: string, previous: string | null) => {
    if (complete(v)) return;
    const t0 = Date.now();
    const dir = dirs[v]!;
    removeSysroot(dir);
    fs.mkdirSync(dir, { recursive: true });
    // The server as the version before left it (hard links), this version published into it.
    if (previous) await shLow('cp', ['-al', path.join(dirs[previous]!, 'server'), path.join(dir, 'server')], stop.signal);
    else fs.mkdirSync(path.join(dir, 'server'));
    const tree = path.join(work, `tree-${v}`);
    await shLow('cp', ['-a', imageTree, tree], stop.signal);
    versionTree(tree, v);
    await toOstreeTree(tree, path.join(dir, 'var-seed'), stop.signal);
    const t1 = Date.now();
    const commit = await publishOstreeImage(tree, v, path.join(dir, 'server'), keys.fleetKey, keys.gpg, stop.signal);
    await shLow('rm', ['-rf', '--one-file-system', tree], stop.signal);
    fs.writeFileSync(path.join(dir, 'commit'), commit + '\n');
    fs.writeFileSync(path.join(dir, '.complete'), '');
    o.log(`image ${v} committed as ${commit.slice(0, 12)} in ${Math.round((Date.now() - t0) / 1000)} s (tabula-fleet publish ${Math.round((Date.now() - t1) / 1000)} s)`);
  };
  const [first, ...later] = OSTREE_LAB_VERSIONS;
  await build(first, null);
  // Each later version after the one before it (its server is a copy of that one's).
  const built: Record<string, Promise<void>> = { [first]: Promise.resolve() };
  let previous: string = first;
  for (const v of later) {
    const before = previous;
    built[v] = built[before]!.then(() => build(v, before));
    previous = v;
  }
  // The trees' work folder goes once the last is made or the making failed (the scenario that awaits it says why).
  const settled = built[previous]!.catch(() => undefined).then(() => (imageTree ? shLow('rm', ['-rf', '--one-file-system', work]) : '')).then(() => undefined, () => undefined);
  const diskDir = path.join(o.cache, `ostree-disk-${hashOf(dirs[first]!, String(makeOstreeLaptopDisk), String(assembleDisk), KARGS.join(' '), fs.readFileSync(path.join(repo, 'assets/boot/usr/libexec/tabula/tabula-ostree-esp')), o.user)}`);
  const commitOf = (v: string) => fs.readFileSync(path.join(dirs[v]!, 'commit'), 'utf8').trim();
  if (!fs.existsSync(path.join(diskDir, '.complete'))) {
    const t0 = Date.now();
    removeSysroot(diskDir);
    fs.mkdirSync(diskDir, { recursive: true });
    makeOstreeLaptopDisk({ dir: diskDir, base: o.base, serverDir: path.join(dirs[first]!, 'server'), commit: commitOf(first), gpg: keys.gpg, varSeed: path.join(dirs[first]!, 'var-seed'), user: o.user, url: `http://${REPO_ADDR}/repo` });
    fs.writeFileSync(path.join(diskDir, '.complete'), '');
    o.log(`laptop disk with image 1 installed in ${Math.round((Date.now() - t0) / 1000)} s`);
  } else o.log(`the laptop disk with image 1 from the cache${later.every(complete) ? `, and images ${later.join(', ')}` : `; images ${later.filter((v) => !complete(v)).join(', ')} are made while the laptop boots`}`);
  // Older images and disks are superseded (the VM lock keeps two labs from using the cache at once).
  const used = [...Object.values(dirs), diskDir];
  for (const n of fs.readdirSync(o.cache)) {
    const p = path.join(o.cache, n);
    if (/^(ostree-image-|ostree-disk-|ostree-lab-[0-9a-f]{16}$)/.test(n) && !used.includes(p)) removeSysroot(p);
  }
  return {
    gpg: keys.gpg,
    fleetKey: keys.fleetKey,
    ready: async (v) => {
      await built[v];
      return { server: path.join(dirs[v]!, 'server'), commit: commitOf(v) };
    },
    stop: () => stop.abort(),
    settled,
    sshKey: keys.sshKey,
    nasKeys: keys.nasKeys,
    disk: path.join(diskDir, 'disk.img'),
  };
}

/**
 * Image 1 as the package makes it, before it becomes an ostree tree: the base with Tabula installed
 * (image.ts), the fleet's GPG key, and two tries for a new deployment (/etc/kernel/tries, read by
 * tabula-ostree-esp on the system that stages it; (f) sets one for its broken 3). Not one:
 * under TCG with two virtual CPUs a boot now and then crashes in the guest kernel (session 9: an
 * int3 Oops in sched_clock_cpu, 4 s in, qemu 7.2's multi-threaded TCG racing the kernel's text
 * patching across vCPUs), and with one try that crash made a good image 2 count as broken. Two
 * tries survive one such crash; -smp 1 would avoid it but boots ~1.5x slower here (run-lab.ts).
 */
function labImage(base: string, dest: string, settings: LabImageSettings & { deb: string | null }, gpg: GpgSigner): string {
  return makeImageTree(base, dest, OSTREE_LAB_VERSIONS[0], settings, (t) => {
    fs.copyFileSync(gpg.publicKeyFile, path.join(t, 'usr/share/defaults/tabula/fleet.gpg'));
    fs.writeFileSync(path.join(t, 'etc/kernel/tries'), '2\n');
    // What a boot of the virtual laptop does not need (image.ts): the ostree laptop's boots spent
    // 6-9 s after the switch root in generators and in modules probed for nothing (vmw_vmci, vsock).
    leanBoot(t);
    leanOstreeBoot(t);
  });
}

/**
 * The ostree laptop's boot, trimmed to what a q35 laptop with one virtio disk needs (lab image
 * only; a fleet's image keeps Debian's generic initramfs for whatever hardware it meets):
 * - the initramfs: dracut's generic one (hostonly=no) holds 778 kernel modules and 24 dracut
 *   modules, 60 MB that the kernel gunzips at every boot and udev walks (session 12: kernel to /init
 *   5-11 s, /init to the root device 9-26 s under TCG). Here: systemd's initrd with ostree's and
 *   Tabula's modules, the virtio disk and ext4 only (virtio_pci is built into Debian's kernel), not
 *   compressed (the kernel copies it instead of inflating it; the ESP has room);
 * - dracut-shutdown.service: it unpacks that initramfs into /run/initramfs at every shutdown so
 *   that systemd can return to it to unmount the root; systemd-shutdown remounts an ext4 root
 *   read-only itself;
 * - e2scrub_reap.service (LVM snapshots of e2scrub: the laptop has no LVM) and
 *   systemd-boot-random-seed.service (ordered before sysinit.target, it opens the ESP to top up a
 *   seed systemd-boot rewrites itself at every boot; the rsync-tree image masks it too).
 */
function leanOstreeBoot(t: string): void {
  const kver = fs.readdirSync(path.join(t, 'usr/lib/modules'))[0]!;
  fs.writeFileSync(
    path.join(t, 'etc/dracut.conf.d/20-tabula-lab-lean.conf'),
    'dracutmodules=" systemd-initrd dracut-systemd rootfs-block kernel-modules udev-rules base fs-lib ostree tabula-ostree "\ndrivers=" virtio_blk ext4 "\nfilesystems=" ext4 "\n',
  );
  const initrd = `/boot/initrd.img-${kver}`;
  sh('chroot', [t, 'dracut', '--quiet', '--force', '--no-compress', '--kver', kver, initrd], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
  const list = sh('chroot', [t, 'lsinitrd', initrd], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
  for (const f of ['usr/lib/ostree/ostree-prepare-root', 'usr/libexec/tabula/tabula-ostree-var', 'usr/libexec/tabula/tabula-ostree-identity', '/virtio_blk.ko', '/ext4.ko']) {
    if (!list.includes(f)) throw new Error(`the lab's lean initramfs lacks ${f}:\n${list.split('\n').slice(0, 40).join('\n')}`);
  }
  for (const unit of ['dracut-shutdown.service', 'e2scrub_reap.service', 'systemd-boot-random-seed.service']) {
    fs.rmSync(path.join(t, 'etc/systemd/system', unit), { force: true });
    fs.symlinkSync('/dev/null', path.join(t, 'etc/systemd/system', unit));
  }
}

/**
 * What the package installs, file by file: not the .deb's own bytes, whose changelog date and file
 * times follow the latest commit, so that a commit that changes nothing installed keeps the cache.
 */
function debContentHash(deb: string): string {
  const dir = fs.mkdtempSync(path.join(path.dirname(deb), 'deb-content-'));
  try {
    sh('dpkg-deb', ['-x', deb, dir]);
    const h = crypto.createHash('sha256');
    const files = sh('find', ['.', '-type', 'f', '!', '-path', './usr/share/doc/*/changelog*'], { cwd: dir, env: { ...process.env, LC_ALL: 'C' } }).split('\n').filter(Boolean).sort();
    for (const f of files) h.update(`${f}\0`).update(fs.readFileSync(path.join(dir, f)));
    return h.digest('hex');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The fleet's web server on the host's loopback: static files from `root`, GET and HEAD only, no
 * listing, nothing outside `root`. Counts the bytes it sends (the pull's cost as the server sees it).
 */
export function serveStatic(root: string): Promise<{ port: number; bytesSent: () => number; close: () => Promise<void> }> {
  let sent = 0;
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    const file = path.resolve(root, '.' + path.posix.normalize(rel));
    const st = file.startsWith(root + path.sep) && (req.method === 'GET' || req.method === 'HEAD') ? fs.statSync(file, { throwIfNoEntry: false }) : undefined;
    if (!st?.isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': st.size, 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') return void res.end();
    const s = fs.createReadStream(file);
    s.on('data', (c) => (sent += c.length));
    s.pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({ port, bytesSent: () => sent, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}
