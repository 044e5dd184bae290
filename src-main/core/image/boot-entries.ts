// The rsync-tree boot path: one Boot Loader Specification entry per kept deployment in the ESP, read
// by systemd-boot (https://uapi-group.org/specifications/specs/boot_loader_specification/).
//   <esp>/tabula/<hash>/{linux,initrd}     a deployment's kernel and initramfs, shared by content
//   <esp>/loader/entries/tabula-<id>[+N[-M]].conf
// The entry for `next` gets the highest `version` field, so systemd-boot (which sorts entries by
// sort-key, then version, newest first, and puts entries without tries left last) boots it by
// default. A newly written entry carries a boot counter (+3, or the image's /etc/kernel/tries): systemd-boot counts each try down,
// systemd-bless-boot drops the counter once the boot reached its target (tabula-helper does it before
// staging anything where bless-boot did not), and an entry at +0 is
// skipped, so a deployment that never comes up falls back to the next entry by itself.
// Runs as root inside tabula-helper; the installer (and the lab) use it to write the first entry.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { DeploymentsStatus, ImageDeployment } from '../../common/contract/image';
import { TabulaError } from '../../common/errors';
import { fsyncDir, readJsonDocument, writeFileAtomic } from '../atomic-file';
import { failedBootsSchema, readBootedMarker, readFailedBoots, readSymlink, switchSymlink } from './deployments-dir';
import type { PullResult, RsyncTreeBackend } from './rsync-tree';

/** Tries a new entry gets when its image does not say (kernel-install's /etc/kernel/tries). */
export const BOOT_TRIES = 3;
/** The persistent disk is found by its file-system label (the initramfs hook mounts it as the root first). */
export const STATE_LABEL = 'tabula-state';

export interface BootEntry {
  /** The deployment the entry boots (from its `options` line). */
  version: string;
  file: string;
  /** null: no boot counter (a good entry, or one written without counting). */
  triesLeft: number | null;
  triesDone: number | null;
}

export interface BootEntriesOptions {
  /** Mount point of the ESP (systemd-boot's partition), e.g. /efi. */
  esp: string;
  /** /var/lib/tabula/deployments (each <version>/tree is a full OS tree). */
  deploymentsDir: string;
}

/** Entry file names: tabula-<id>.conf where <id> is the version with `+` (the counter separator) escaped. */
const entryId = (version: string) => `tabula-${version.replace(/\+/g, '_p')}`;
const entryPattern = /^(tabula-[A-Za-z0-9._-]+?)(?:\+(\d+)(?:-(\d+))?)?\.conf$/;

export function isBootPathInstalled(esp: string): boolean {
  return fs.existsSync(path.join(esp, 'loader'));
}

/** The tabula entries on the ESP with their boot counters. */
export function readBootEntries(esp: string): BootEntry[] {
  const dir = path.join(esp, 'loader/entries');
  const out: BootEntry[] = [];
  for (const file of safeReaddir(dir)) {
    const m = entryPattern.exec(file);
    if (!m) continue;
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, file), 'utf8');
    } catch {
      continue;
    }
    const version = /(?:^|\s)tabula\.deployment=(\S+)/m.exec(/^options\s+(.*)$/m.exec(text)?.[1] ?? '')?.[1];
    if (!version) continue;
    out.push({ version, file, triesLeft: m[2] === undefined ? null : Number(m[2]), triesDone: m[3] === undefined ? (m[2] === undefined ? null : 0) : Number(m[3]) });
  }
  return out;
}

/** The kernel and initramfs inside a deployment tree (Debian's /boot layout, or /usr/lib/modules/<kver>/). */
export function findKernel(tree: string): { linux: string; initrd: string; kver: string } {
  const boot = path.join(tree, 'boot');
  const kvers = safeReaddir(boot)
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .filter((k) => fs.existsSync(path.join(boot, `initrd.img-${k}`)))
    .sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
  if (kvers[0]) return { linux: path.join(boot, `vmlinuz-${kvers[0]}`), initrd: path.join(boot, `initrd.img-${kvers[0]}`), kver: kvers[0] };
  const modules = path.join(tree, 'usr/lib/modules');
  for (const k of safeReaddir(modules).sort((a, b) => b.localeCompare(a, 'en', { numeric: true }))) {
    const linux = path.join(modules, k, 'vmlinuz');
    const initrd = path.join(modules, k, 'initramfs.img');
    if (fs.existsSync(linux) && fs.existsSync(initrd)) return { linux, initrd, kver: k };
  }
  throw new TabulaError('image-invalid', `The image has no kernel with an initramfs (looked in ${boot}).`);
}

/**
 * How many tries systemd-boot gives a new entry: the image's own `/etc/kernel/tries`, as
 * kernel-install reads it (a positive integer), else BOOT_TRIES. A file that is not a small regular
 * file holding 1–99 is ignored: the image is signed, but a typo must not make an entry untried.
 */
export function bootTries(tree: string): number {
  const file = path.join(tree, 'etc/kernel/tries');
  try {
    const st = fs.lstatSync(file);
    if (!st.isFile() || st.size > 64) return BOOT_TRIES;
    const m = /^\s*(\d{1,2})\s*$/.exec(fs.readFileSync(file, 'utf8'));
    const n = m ? Number(m[1]) : 0;
    return n >= 1 ? n : BOOT_TRIES;
  } catch {
    return BOOT_TRIES;
  }
}

function kernelCmdline(tree: string): string {
  // The image's own extra options (console, quiet, …), as kernel-install reads them.
  let extra = '';
  try {
    extra = fs.readFileSync(path.join(tree, 'etc/kernel/cmdline'), 'utf8').replace(/\s+/g, ' ').trim();
  } catch {
    /* none */
  }
  // An image must not choose another root or deployment: those are the boot path's.
  extra = extra
    .split(' ')
    .filter((w) => w && !/^(root|rootflags|rootfstype|init|tabula\.[a-z]+)=/.test(w) && w !== 'ro' && w !== 'rw')
    .join(' ');
  return `root=LABEL=${STATE_LABEL} rw ${extra}`.trim();
}

/**
 * Makes the ESP hold an entry for each of `versions` (the first is `next`, the default; the others in
 * the order given) and nothing else of Tabula's. An entry that exists keeps its file name, so its
 * boot counter (or its blessing) is kept; a new entry starts with +BOOT_TRIES, unless `blessed`.
 */
export function writeBootEntries(opts: BootEntriesOptions & { versions: string[]; osName?: string; blessed?: boolean }): BootEntry[] {
  const entriesDir = path.join(opts.esp, 'loader/entries');
  fs.mkdirSync(entriesDir, { recursive: true });
  const existing = readBootEntries(opts.esp);
  const keepKernels = new Set<string>();
  opts.versions.forEach((version, i) => {
    const tree = path.join(opts.deploymentsDir, version, 'tree');
    const k = findKernel(tree);
    const dirName = copyKernel(opts.esp, k.linux, k.initrd);
    keepKernels.add(dirName);
    const rank = String(opts.versions.length - i).padStart(4, '0');
    const body = [
      `title ${opts.osName ?? 'Tabula'} ${version}`,
      'sort-key tabula',
      `version ${rank}`,
      `linux /tabula/${dirName}/linux`,
      `initrd /tabula/${dirName}/initrd`,
      `options ${kernelCmdline(tree)} tabula.deployment=${version}`,
      '',
    ].join('\n');
    const had = existing.find((e) => e.version === version);
    const file = had?.file ?? `${entryId(version)}${opts.blessed ? '' : `+${bootTries(tree)}`}.conf`;
    writeFileAtomic(path.join(entriesDir, file), body, 0o644);
  });
  for (const e of existing) if (!opts.versions.includes(e.version)) fs.rmSync(path.join(entriesDir, e.file), { force: true });
  for (const d of safeReaddir(path.join(opts.esp, 'tabula'))) if (!keepKernels.has(d)) fs.rmSync(path.join(opts.esp, 'tabula', d), { recursive: true, force: true });
  fsyncDir(entriesDir);
  return readBootEntries(opts.esp);
}

/** Kernel and initramfs go to a folder named by their content, so deployments with the same kernel share one copy. */
function copyKernel(esp: string, linux: string, initrd: string): string {
  const h = crypto.createHash('sha256');
  for (const f of [linux, initrd]) h.update(fs.readFileSync(f));
  const name = h.digest('hex').slice(0, 16);
  const dir = path.join(esp, 'tabula', name);
  if (fs.existsSync(path.join(dir, 'linux')) && fs.existsSync(path.join(dir, 'initrd'))) return name;
  const tmp = `${dir}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  fs.copyFileSync(linux, path.join(tmp, 'linux'));
  fs.copyFileSync(initrd, path.join(tmp, 'initrd'));
  for (const f of ['linux', 'initrd']) {
    const fd = fs.openSync(path.join(tmp, f), 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  fsyncDir(path.dirname(dir));
  return name;
}

/**
 * After a boot: did the deployment `next` names fail to start? True when the machine booted another
 * version and `next`'s entry has no tries left (systemd-boot gave up on it).
 */
export function failedBoot(esp: string, next: string | null, booted: string | null): string | null {
  if (!next || !booted || next === booted) return null;
  const e = readBootEntries(esp).find((x) => x.version === next);
  return e && e.triesLeft === 0 ? next : null;
}


/**
 * The rsync-tree backend with its boot path: after every stage, rollback and reimage the ESP holds
 * an entry for each kept deployment (`next` first); at every status read, a staged version that
 * systemd-boot gave up on is recorded, `next` goes back to what booted, and that version is never
 * staged again (a newer one is). Without an ESP at <root>/efi (no boot path installed, as in
 * tests with a temporary root) the backend runs unchanged.
 */
export function withBootEntries(root: string, b: RsyncTreeBackend, opts: { bootComplete?: () => boolean } = {}) {
  const esp = path.join(root, 'efi');
  /** Has this boot reached boot-complete.target (systemd's "this boot is good")? Asked of systemd on a booted machine only. */
  const bootComplete = opts.bootComplete ?? (() => root === '/' && spawnSync('systemctl', ['is-active', '--quiet', 'boot-complete.target'], { stdio: 'ignore', timeout: 60_000 }).status === 0);
  const failedFile = path.join(b.paths.base, 'failed-boots.json');
  const installed = () => isBootPathInstalled(esp);
  const nextVersion = () => {
    const t = readSymlink(b.paths.nextLink);
    return t ? path.basename(t) : null;
  };
  const readFailed = () => readFailedBoots(failedFile);
  /**
   * Before anything new is staged, the running version must be a good entry to fall back to.
   * systemd-bless-boot marks a boot that reached boot-complete.target good (its entry loses the
   * "+LEFT-DONE" counter); where that did not happen (the ostree laptop saw it FAILED once), the
   * entry stays counted, and once a broken new version's tries are spent too, a crash of the good
   * one can spend its last try, and systemd-boot has only counted-out entries left. So the running
   * entry is marked good here, on the same evidence bless-boot uses (as ostree.ts does).
   */
  function blessBooted() {
    const booted = readBootedMarker(root);
    if (!booted || !installed()) return;
    const counted = readBootEntries(esp).find((e) => e.version === booted && e.triesLeft !== null);
    const dir = path.join(esp, 'loader/entries');
    const good = `${entryId(booted)}.conf`;
    if (!counted || fs.existsSync(path.join(dir, good)) || !bootComplete()) return;
    fs.renameSync(path.join(dir, counted.file), path.join(dir, good));
    fsyncDir(dir);
    process.stderr.write(`tabula-helper: this boot reached boot-complete.target but its entry ${counted.file} was not marked good (systemd-bless-boot did not run or failed); marked it good, so a new version has it to fall back to\n`);
  }
  function sync() {
    if (!installed()) {
      // A machine started by this boot path must be able to change its boot entries.
      if (root === '/' && readBootedMarker(root)) throw new TabulaError('image-invalid', `The boot partition (ESP) is not mounted at ${esp}: the new version cannot be made bootable.`);
      return;
    }
    const s = b.status();
    const versions = [...new Set([nextVersion(), s.booted?.version, s.rollback?.version].filter((v): v is string => !!v))];
    writeBootEntries({ esp, deploymentsDir: b.paths.deploymentsDir, versions });
  }
  function assess(): DeploymentsStatus['failedBoot'] {
    const booted = readBootedMarker(root);
    if (installed()) {
      const failed = failedBoot(esp, nextVersion(), booted);
      if (failed && booted) {
        const read = readJsonDocument(failedFile, failedBootsSchema);
        // A damaged record is kept beside (nothing is lost) and a new one starts with this failure.
        if (read.status === 'invalid') fs.renameSync(failedFile, `${failedFile}.damaged-${Date.now()}`);
        const records = read.status === 'ok' ? read.value.filter((r) => r.version !== failed) : [];
        writeFileAtomic(failedFile, JSON.stringify([...records, { version: failed, bootedInstead: booted, at: new Date().toISOString() }].slice(-20), null, 2) + '\n', 0o644);
        switchSymlink(b.paths.nextLink, `deployments/${booted}`);
        sync();
      }
    }
    const read = readJsonDocument(failedFile, failedBootsSchema);
    const last = read.status === 'ok' ? read.value.at(-1) : undefined;
    return last && last.bootedInstead === booted ? { version: last.version, bootedInstead: last.bootedInstead } : null;
  }
  return {
    status: (): DeploymentsStatus => {
      const failed = assess();
      return { ...b.status(), failedBoot: failed };
    },
    check: () => b.check(),
    serverData: () => b.serverData(),
    /** `offer`: the channel's version as check() found it earlier in this run (not fetched again). */
    async stage(offer?: ImageDeployment) {
      assess();
      const v = offer?.version ?? (await b.check()).version;
      if (readFailed().some((r) => r.version === v)) {
        throw new TabulaError('image-invalid', `Version ${v} failed to start on this computer before, so it is not installed again; waiting for a newer version.`);
      }
      blessBooted();
      const r = await b.stage(v);
      sync();
      return r;
    },
    rollback(): DeploymentsStatus {
      blessBooted();
      const s = b.rollback();
      sync();
      return s;
    },
    /**
     * A reset never lays down a version that failed to start here: when the channel still names
     * one, it takes a fresh copy of the version running (which did start), and says why.
     */
    async reimage(): Promise<PullResult & { note?: string }> {
      assess();
      const channel = (await b.check()).version;
      blessBooted();
      if (!readFailed().some((r) => r.version === channel)) {
        const r = await b.reimage(channel);
        sync();
        return r;
      }
      const running = readBootedMarker(root);
      if (!running || readFailed().some((r) => r.version === running)) {
        throw new TabulaError('image-invalid', `Version ${channel} failed to start on this computer before, and no version known to start is running: the reset is not prepared; waiting for a newer version.`);
      }
      const r = await b.reimage(running);
      sync();
      return { ...r, note: `Version ${channel}, the channel's, failed to start on this computer, so the reset lays down a fresh copy of version ${running}, the one running.` };
    },
    close: () => b.close(),
  };
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
