// The ostree backend: the standard for image-based desktops. Runs as root inside tabula-helper (or
// directly in tests against a sysroot in a temp folder). Every ostree call is execFile with an
// argument array; the remote, ref and URL come from the image's own config, never from the user.
// Signatures: Debian's ostree 2022.7 has no ed25519 `ostree sign`, so commits and the summary are
// GPG-signed and the remote verifies both (gpg-verify, gpg-verify-summary): see README.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { DeploymentsStatus, ImageDeployment, ImageUpdateProgress } from '../../common/contract/image';
import { TabulaError } from '../../common/errors';
import { readJsonDocument, writeFileAtomic } from '../atomic-file';
import { failedBootsSchema, readBootedMarker, readFailedBoots } from './deployments-dir';
import { createTrustStore, type ServerData, type TrustStore } from './freshness';

export const REMOTE = 'tabula';
/** The package's copy of ostree's boot entries to the ESP (assets/boot/usr/libexec/tabula/). */
export const OSTREE_ESP_SYNC = '/usr/libexec/tabula/tabula-ostree-esp';

export interface OstreeOptions {
  /** The sysroot: "/" on a real machine, a temp folder in tests. */
  sysroot: string;
  /** http(s):// URL of the fleet's ostree repo. */
  url: string;
  ref: string;
  osName: string;
  /** GPG public keyring (binary or armored) shipped in the image, imported for the remote. */
  gpgKeyring: string;
  /** Is this a booted ostree system? Then deployments are staged (`deploy --stage`). */
  booted?: boolean;
  /** The ESP, where tabula-ostree-esp copies ostree's entries; default <sysroot>/efi. */
  esp?: string;
  /** Brings the ESP's entries in line with ostree's after a deployment is removed; default on a booted system: tabula-ostree-esp. */
  syncEsp?: () => Promise<void>;
  /** Has this boot reached boot-complete.target (systemd's "this boot is good")? Default on a booted system: systemctl; false otherwise. */
  bootComplete?: () => Promise<boolean>;
  /** Highest summary serial and version accepted; default <sysroot>/var/lib/tabula/trust.json. */
  trust?: TrustStore;
  onProgress?: (p: ImageUpdateProgress) => void;
}

interface OstreeDeployment {
  osName: string;
  checksum: string;
  serial: number;
  version: string | null;
  booted: boolean;
  staged: boolean;
}

function run(args: string[], timeoutMs = 30 * 60_000, cmd: { file: string; pre: string[] } = { file: 'ostree', pre: [] }): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd.file, [...cmd.pre, ...args], { maxBuffer: 16 * 1024 * 1024, timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stdout, stderr }));
      else resolve({ stdout, stderr });
    });
  });
}

/** ostree's error lines → a message for a person. */
function describe(err: unknown, doing: string, url: string): TabulaError {
  const e = err as NodeJS.ErrnoException & { stderr?: string };
  if (e.code === 'ENOENT') return new TabulaError('image-not-configured', 'ostree is not installed on this machine, so the ostree image backend cannot work.');
  const text = (e.stderr || e.message || '').trim();
  const last = text.split('\n').filter(Boolean).at(-1) ?? text;
  // Connection failures first: their message names the file being fetched (e.g. summary.sig).
  if (/Couldn't connect|Connection refused|Could not resolve|Timeout|timed out|Server returned HTTP|Failed to connect/i.test(text)) {
    return new TabulaError('image-unreachable', `The image server ${url} could not be reached (${last.replace(/^error: /, '')}).`, { retryable: true });
  }
  if (/GPG|signature|summary\.sig|No such key|gpg/i.test(text)) {
    return new TabulaError('signature-invalid', `The image from ${url} is not signed by a key this machine trusts (${last.replace(/^error: /, '')}): refused.`);
  }
  if (/Corrupted|checksum|Invalid checksum|Couldn't find file object|corrupt/i.test(text)) {
    return new TabulaError('image-invalid', `The image from ${url} is damaged or tampered with (${last.replace(/^error: /, '')}): refused.`);
  }
  return new TabulaError('helper-failed', `ostree could not ${doing}: ${last.replace(/^error: /, '')}`);
}

/** `pull --timestamp-check` refusing an older commit: the server offers a downgrade. */
function describeDowngrade(err: unknown): TabulaError | null {
  const text = ((err as { stderr?: string }).stderr ?? '').trim();
  if (!/timestamp/i.test(text) || !/older|newer/i.test(text)) return null;
  return new TabulaError('image-stale', `The update server offers an older image than this machine already has (${text.split('\n').at(-1)!.replace(/^error: /, '')}); ignored.`, { retryable: true });
}

/** Parses `ostree admin status`; the first deployment is the one the next boot starts. */
export function parseAdminStatus(text: string): OstreeDeployment[] {
  const out: OstreeDeployment[] = [];
  for (const line of text.split('\n')) {
    const d = /^([* ]) (\S+) ([0-9a-f]{64})\.(\d+)(?: \((staged|pending|rollback)\))?/.exec(line);
    if (d) {
      out.push({ osName: d[2]!, checksum: d[3]!, serial: Number(d[4]), version: null, booted: d[1] === '*', staged: d[5] === 'staged' });
      continue;
    }
    const v = /^\s+Version: (.+)$/.exec(line);
    if (v && out.length) out.at(-1)!.version = v[1]!.trim();
  }
  return out;
}

/**
 * Tries left on a deployment's ESP entry, as systemd-boot's boot counting leaves the names
 * tabula-ostree-esp gives (`tabula-ostree-<checksum>.<serial>[+LEFT[-DONE]].conf`); null when the
 * entry has no counter (blessed, or installed as good) or is not there.
 */
export function espTriesLeft(esp: string, d: { checksum: string; serial: number }): number | null {
  const prefix = `tabula-ostree-${d.checksum}.${d.serial}`;
  let names: string[];
  try {
    names = fs.readdirSync(path.join(esp, 'loader/entries'));
  } catch {
    return null;
  }
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const m = /^(?:\+(\d+)(?:-\d+)?)?\.conf$/.exec(n.slice(prefix.length));
    if (m) return m[1] === undefined ? null : Number(m[1]);
  }
  return null;
}


function parseTransferred(text: string): number {
  // "… 29.6 kB transferred …" (GLib's sizes: SI; newer ostree may print IEC units).
  const m = /([\d.]+)\s*(B|bytes|kB|MB|GB|KiB|MiB|GiB) transferred/.exec(text);
  if (!m) return 0;
  const mult = { B: 1, bytes: 1, kB: 1000, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2] as 'B' | 'bytes' | 'kB' | 'MB' | 'GB' | 'KiB' | 'MiB' | 'GiB'];
  return Math.round(Number(m[1]) * mult);
}

/**
 * On a booted system whose /sysroot is mounted read-only (prepare-root.conf sysroot.readonly, which
 * a transient /etc needs), the repo is written from a private mount namespace where /sysroot is
 * writable, as `ostree admin` does for itself. The arguments reach ostree as "$@", never through the
 * shell's parser.
 */
const WRITABLE_SYSROOT = { file: 'unshare', pre: ['--mount', '--propagation', 'slave', '--', 'sh', '-c', 'mount -o remount,rw /sysroot && exec ostree "$@"', 'ostree'] };

export function createOstreeBackend(opts: OstreeOptions) {
  const repo = path.join(opts.sysroot, 'ostree/repo');
  /** A command that writes the repo (pull, remote add, gpg-import, the summary cache). */
  const runRepo = (args: string[], timeoutMs?: number) => (opts.booted ? run(args, timeoutMs, WRITABLE_SYSROOT) : run(args, timeoutMs));
  const repoArg = `--repo=${repo}`;
  const sysrootArg = `--sysroot=${opts.sysroot}`;
  const refspec = `${REMOTE}:${opts.ref}`;
  const resetMarker = path.join(opts.sysroot, 'var/lib/tabula/reset-on-boot');
  const esp = opts.esp ?? path.join(opts.sysroot, 'efi');
  const failedFile = path.join(opts.sysroot, 'var/lib/tabula/failed-boots.json');
  const readFailed = () => readFailedBoots(failedFile);
  const versionOf = (d: OstreeDeployment) => d.version ?? d.checksum.slice(0, 10);
  /** Removes deployment `index` (not a staged one), then the ESP follows ostree's entries. */
  async function undeploy(index: number) {
    await run(['admin', sysrootArg, 'undeploy', String(index)]);
    if (opts.syncEsp) await opts.syncEsp();
    else if (opts.booted && fs.existsSync(OSTREE_ESP_SYNC)) {
      await run([], 5 * 60_000, { file: OSTREE_ESP_SYNC, pre: [] }).catch((err: unknown) => {
        throw new TabulaError('helper-failed', `The boot menu on the ESP could not be updated (${OSTREE_ESP_SYNC}: ${((err as { stderr?: string }).stderr ?? '').trim() || (err as Error).message}).`);
      });
    }
  }
  const trust = opts.trust ?? createTrustStore(path.join(opts.sysroot, 'var/lib/tabula/trust.json'));

  /**
   * The signed summary's serial and expiry (tabula-fleet adds them as summary metadata), checked
   * against what was accepted before: a replayed or frozen summary is refused before any pull.
   * `remote summary` verifies the summary's GPG signature (gpg-verify-summary=true).
   */
  /** Set once check() verified the summary in this run (this backend lives for one helper run). */
  let summaryChecked = false;
  async function verifySummary(): Promise<void> {
    let text: string;
    try {
      text = (await runRepo([repoArg, 'remote', 'summary', REMOTE])).stdout;
    } catch (err) {
      throw describe(err, 'read the update summary', opts.url);
    }
    const serial = /^tabula\.serial: (\d+)$/m.exec(text)?.[1];
    const expires = /^tabula\.expires: '([^']+)'$/m.exec(text)?.[1];
    if (!serial || !expires || Number.isNaN(Date.parse(expires))) {
      throw new TabulaError('image-invalid', `The update summary from ${opts.url} has no serial or expiry (published by an older tabula-fleet?): refused. Publish again.`);
    }
    trust.accept('summary', 'update summary', Buffer.from(text), { serial: Number(serial), expires: new Date(expires).toISOString() });
  }

  /**
   * The remote as the image config says: re-created when the URL changed, keys imported. Asked of
   * ostree, not read from repo/config: on a booted system remotes live in /etc/ostree/remotes.d
   * (the image may ship one; with a transient /etc one added here lasts until the next boot).
   */
  async function ensureRemote() {
    if (!fs.existsSync(path.join(repo, 'config'))) throw new TabulaError('image-not-configured', `There is no ostree system at ${opts.sysroot}.`);
    const current = await run([repoArg, 'remote', 'show-url', REMOTE]).then((r) => r.stdout.trim(), () => null);
    if (current === opts.url) return;
    if (current !== null) await runRepo([repoArg, 'remote', 'delete', REMOTE]);
    if (!fs.existsSync(opts.gpgKeyring)) throw new TabulaError('image-not-configured', `The fleet's GPG key (${opts.gpgKeyring}) is missing from the image, so no ostree image can be trusted.`);
    await runRepo([repoArg, 'remote', 'add', '--set=gpg-verify=true', '--set=gpg-verify-summary=true', REMOTE, opts.url, opts.ref]);
    await runRepo([repoArg, 'remote', 'gpg-import', REMOTE, '-k', opts.gpgKeyring]);
  }

  async function deployments(): Promise<OstreeDeployment[]> {
    try {
      return parseAdminStatus((await run(['admin', sysrootArg, 'status'])).stdout).filter((d) => d.osName === opts.osName);
    } catch (err) {
      throw describe(err, 'read the deployments', opts.url);
    }
  }

  function bootedOf(list: OstreeDeployment[]): OstreeDeployment | null {
    const star = list.find((d) => d.booted);
    if (star) return star;
    // Not a booted ostree system (tests: a temp sysroot): the boot marker names the commit.
    const marker = readBootedMarker(opts.sysroot);
    return list.find((d) => d.checksum === marker) ?? null;
  }

  const dep = (d: OstreeDeployment | null | undefined): ImageDeployment | null => (d ? { version: d.version ?? d.checksum.slice(0, 10), checksum: d.checksum } : null);

  /**
   * A new version that did not start: ostree's default deployment is not what booted, and
   * systemd-boot gave up on its ESP entry (no tries left), so the previous one booted instead. It is
   * recorded in failed-boots.json (never staged again) and removed, so the machine's default is what
   * runs. Returns the latest failure when this boot is the one that fell back from it.
   */
  async function assess(list: OstreeDeployment[]): Promise<{ list: OstreeDeployment[]; failedBoot: DeploymentsStatus['failedBoot'] }> {
    const booted = bootedOf(list);
    const first = list[0];
    if (first && booted && first !== booted && !first.staged && espTriesLeft(esp, first) === 0) {
      const read = readJsonDocument(failedFile, failedBootsSchema);
      // A damaged record is kept beside (nothing is lost) and a new one starts with this failure.
      if (read.status === 'invalid') fs.renameSync(failedFile, `${failedFile}.damaged-${Date.now()}`);
      const records = read.status === 'ok' ? read.value.filter((r) => r.version !== versionOf(first)) : [];
      const record = { version: versionOf(first), bootedInstead: versionOf(booted), checksum: first.checksum, at: new Date().toISOString() };
      writeFileAtomic(failedFile, JSON.stringify([...records, record].slice(-20), null, 2) + '\n', 0o644);
      await undeploy(0);
      list = await deployments();
    }
    const read = readJsonDocument(failedFile, failedBootsSchema);
    const last = read.status === 'ok' ? read.value.at(-1) : undefined;
    const now = bootedOf(list);
    return { list, failedBoot: last && now && last.bootedInstead === versionOf(now) ? { version: last.version, bootedInstead: last.bootedInstead } : null };
  }

  async function statusNow(): Promise<DeploymentsStatus> {
    const { list, failedBoot } = await assess(await deployments());
    const booted = bootedOf(list) ?? list[0] ?? null;
    const first = list[0] ?? null;
    const staged = first && booted && first !== booted ? first : null;
    const rollback = staged ? booted : list.find((d) => d !== booted) ?? null;
    return { backend: 'ostree', booted: dep(booted), staged: dep(staged), rollback: dep(rollback), reimagePending: fs.existsSync(resetMarker), failedBoot };
  }

  /**
   * The kernel arguments of a deployment's boot entry, without ostree's own. A deploy with
   * `--no-merge` takes neither /etc nor the kernel arguments from a running deployment (both come
   * from ostree's "merge deployment"), so a reimage passes them again: without them the lab's
   * laptop came back without root=, rw and console= (its /var read-only, so not reset).
   */
  function kargsOf(d: OstreeDeployment): string[] | null {
    const dir = path.join(opts.sysroot, 'boot/loader/entries');
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => n.endsWith('.conf'));
    } catch {
      return null;
    }
    for (const n of names) {
      const options = /^options[ \t]+(.+)$/m.exec(fs.readFileSync(path.join(dir, n), 'utf8'))?.[1]?.trim().split(/\s+/) ?? [];
      const link = options.find((o) => o.startsWith('ostree='))?.slice('ostree='.length);
      if (!link?.startsWith('/ostree/')) continue;
      let target: string;
      try {
        target = path.basename(fs.readlinkSync(path.join(opts.sysroot, link)));
      } catch {
        continue;
      }
      // ostree's own arguments (ostree=, and init= into /ostree/ where the initramfs has no ostree-prepare-root) it writes itself.
      if (target === `${d.checksum}.${d.serial}`) return options.filter((o) => !o.startsWith('ostree=') && !o.startsWith('init=/ostree/'));
    }
    return null;
  }

  /** The version the fetched ref points at. */
  async function fetchedVersion(): Promise<{ version: string; checksum: string }> {
    const checksum = (await run([repoArg, 'rev-parse', refspec])).stdout.trim();
    const meta = await run([repoArg, 'show', '--print-metadata-key=version', checksum]).catch(() => ({ stdout: '' }));
    const version = /^'(.*)'$/.exec(meta.stdout.trim())?.[1] ?? checksum.slice(0, 10);
    return { checksum, version };
  }
  /** Whether a version failed to start here before (a damaged record throws: readFailed). */
  const failedHere = (v: { version: string; checksum: string }) => readFailed().some((r) => r.version === v.version || r.checksum === v.checksum);

  /** Keeps the next boot, the booted one and one previous; removes the rest. Returns what is left. */
  async function prune(): Promise<OstreeDeployment[]> {
    const list = await deployments();
    const booted = bootedOf(list);
    const keep = new Set([list[0], booted, list.find((d) => d !== list[0] && d !== booted)]);
    // Undeploy from the end so indexes stay valid.
    for (let i = list.length - 1; i >= 0; i--) if (!keep.has(list[i])) await undeploy(i);
    return list.filter((d) => keep.has(d));
  }

  /** `checked`: this run's check() verified the summary just now (the pull itself still checks every signature). */
  async function pull(checked = false): Promise<number> {
    if (!checked) {
      await ensureRemote();
      await verifySummary();
    }
    opts.onProgress?.({ phase: 'downloading', bytesDone: 0, bytesTotal: null, percent: 0 });
    try {
      // --timestamp-check: a commit older than the one the remote ref holds is a downgrade.
      const r = await runRepo([repoArg, 'pull', '--timestamp-check', REMOTE, opts.ref]);
      return parseTransferred(r.stdout + r.stderr);
    } catch (err) {
      throw describeDowngrade(err) ?? describe(err, 'download the image', opts.url);
    }
  }

  /**
   * Before anything new is staged, the running deployment must be a good entry to fall back to.
   * systemd-bless-boot marks a boot that reached boot-complete.target good (its entry loses the
   * "+LEFT-DONE" counter); where that did not happen (the lab saw it FAILED once, after a reimage),
   * the entry stays counted, and once a broken new version's tries are spent too, systemd-boot has
   * only counted-out entries and starts the newest, the broken one, again and again. So the running
   * entry is marked good here, on the same evidence bless-boot uses. Returns whether it was.
   */
  async function blessBooted(): Promise<boolean> {
    const booted = bootedOf(await deployments());
    if (!booted || espTriesLeft(esp, booted) === null) return false;
    const complete = opts.bootComplete ?? (opts.booted ? () => run(['is-active', '--quiet', 'boot-complete.target'], 60_000, { file: 'systemctl', pre: [] }).then(() => true, () => false) : async () => false);
    if (!(await complete())) return false;
    const dir = path.join(esp, 'loader/entries');
    const prefix = `tabula-ostree-${booted.checksum}.${booted.serial}`;
    const counted = fs.readdirSync(dir).find((n) => n.startsWith(prefix) && /^\+\d+(-\d+)?\.conf$/.test(n.slice(prefix.length)));
    if (!counted || fs.existsSync(path.join(dir, `${prefix}.conf`))) return false;
    fs.renameSync(path.join(dir, counted), path.join(dir, `${prefix}.conf`));
    process.stderr.write(`tabula-helper: this boot reached boot-complete.target but its entry ${counted} was not marked good (systemd-bless-boot did not run or failed); marked it good, so a new version has it to fall back to\n`);
    return true;
  }

  async function deploy(extra: string[], target = refspec) {
    await blessBooted();
    opts.onProgress?.({ phase: 'deploying', bytesDone: 0, bytesTotal: null, percent: 100 });
    try {
      // `--stage` needs a booted ostree system; a temp sysroot takes a plain deploy (ENV-FACTS).
      await run(['admin', sysrootArg, 'deploy', `--os=${opts.osName}`, ...(opts.booted ? ['--stage'] : ['--retain']), ...extra, target]);
    } catch (err) {
      throw describe(err, 'deploy the image', opts.url);
    }
  }

  return {
    status: statusNow,
    /** Commit metadata only: what the remote ref points at, signature checked. */
    async check(): Promise<ImageDeployment> {
      await ensureRemote();
      await verifySummary();
      let found: ImageDeployment;
      try {
        await runRepo([repoArg, 'pull', '--commit-metadata-only', '--timestamp-check', REMOTE, opts.ref]);
        const { version, checksum } = await fetchedVersion();
        found = { version, checksum };
      } catch (err) {
        throw describeDowngrade(err) ?? describe(err, 'check for a new image', opts.url);
      }
      trust.acceptVersion(found.version, null);
      summaryChecked = true;
      return found;
    },
    async serverData(): Promise<ServerData | null> {
      try {
        const r = trust.load().accepted.summary;
        return r ? { serial: r.serial, expires: r.expires } : null;
      } catch {
        return null;
      }
    },
    /** `offer`: what check() returned earlier in this run (its summary verified then). */
    async stage(offer?: ImageDeployment): Promise<{ version: string; bytesReceived: number }> {
      await assess(await deployments());
      readFailed(); // a damaged record stops staging before the download
      const bytesReceived = await pull(!!offer && summaryChecked);
      const fetched = await fetchedVersion();
      if (failedHere(fetched)) throw new TabulaError('image-invalid', `Version ${fetched.version} failed to start on this computer before, so it is not installed again; waiting for a newer version.`);
      const list = await deployments();
      const checksum = fetched.checksum;
      let after = list;
      if (list[0]?.checksum !== checksum) {
        await deploy([]);
        after = await prune();
      }
      return { version: after[0]?.version ?? checksum.slice(0, 10), bytesReceived };
    },
    async rollback(): Promise<DeploymentsStatus> {
      const s = await statusNow();
      // A staged deployment has no boot entries yet: removing it leaves the ESP as it is.
      if (s.staged) await run(['admin', sysrootArg, 'undeploy', '0']);
      else if (s.rollback?.checksum) {
        await deploy([], s.rollback.checksum);
        await prune();
      } else throw new TabulaError('image-invalid', 'There is no previous image version on this machine to go back to.');
      return statusNow();
    },
    /** Pristine deployment of the current image: `--no-merge` drops /etc changes; /var is reset at boot. */
    async reimage(): Promise<{ version: string; bytesReceived: number; note?: string }> {
      readFailed(); // a damaged record stops the reset before the download
      const bytesReceived = await pull();
      // Never a version that failed to start here: then the running one, pristine.
      const fetched = await fetchedVersion();
      const list = await deployments();
      const running = failedHere(fetched) ? bootedOf(list) : null;
      // The kernel arguments of what runs now (known to boot); the default one where nothing is booted (tests).
      const source = bootedOf(list) ?? list[0];
      const kargs = source ? kargsOf(source) : null;
      if (!kargs) throw new TabulaError('helper-failed', `The boot entry of the running image was not found in ${path.join(opts.sysroot, 'boot/loader/entries')}, so a reset could not give the fresh copy its kernel arguments; nothing was changed.`);
      await deploy(['--no-merge', ...kargs.map((k) => `--karg=${k}`)], running ? running.checksum : refspec);
      await prune();
      writeFileAtomic(resetMarker, JSON.stringify({ requestedAt: new Date().toISOString(), reset: ['/etc', '/var'] }) + '\n', 0o600);
      const s = await statusNow();
      const note = running ? `Version ${fetched.version}, the channel's, failed to start on this computer, so the reset lays down a fresh copy of version ${versionOf(running)}, the one running.` : undefined;
      return { version: (s.staged ?? s.booted)?.version ?? '', bytesReceived, ...(note ? { note } : {}) };
    },
  };
}
export type OstreeBackend = ReturnType<typeof createOstreeBackend>;
