// The rsync-tree backend (oneSIS style): the server holds images/<version>/tree/ with a signed
// manifest, and channels/<channel>.json (signed) names the current version. Runs as root inside
// tabula-helper (or directly in tests with TABULA_ROOT). Layout under <root>/var/lib/tabula:
//   deployments/<version>/{tree/,manifest.json,manifest.json.sig}   verified, never written again
//   deployments/<version>.partial/                                   a pull in progress (resumable)
//   next -> deployments/<version>                                    what the next boot starts
//   reset-on-boot                                                    reimage: drop /etc and /var state
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { DeploymentsStatus, ImageDeployment, ImageUpdateProgress } from '../../common/contract/image';
import { TabulaError } from '../../common/errors';
import { parseJsonDocument, writeFileAtomic } from '../atomic-file';
import { describeFleetFailure, fetchFleetFiles, type FleetSource } from '../fleet-source';
import { requireSignature } from '../signing';
import { IO_TIMEOUT_SECONDS, parseableOutput, runRsync, type RsyncRun } from '../rsync';
import { parseStorageUrl, rsyncTarget, sshCommand } from '../storage-url';
import { readBootedMarker, readSymlink, switchSymlink } from './deployments-dir';
import { createTrustStore, expiresSchema, serialSchema, type ServerData, type TrustStore } from './freshness';
import { checkTree, copyIfMatches, inodeIndex, parseManifest, treeMismatchError, versionPattern, type Manifest, type ManifestEntry } from './manifest';

export const channelSchema = z
  .object({
    format: z.literal('tabula-channel-1'),
    channel: z.string(),
    version: z.string().regex(versionPattern),
    publishedAt: z.string(),
    /** Grows with every publication: an older channel file is a replay. */
    serial: serialSchema,
    /** Past this the file is stale, even if the server keeps sending it. */
    expires: expiresSchema,
  })
  .strict();
export type ChannelFile = z.infer<typeof channelSchema>;

export interface RsyncTreeOptions {
  root: string;
  source: FleetSource;
  channel: string;
  trustedKeys: string[];
  /** The version the signed fleet policy pins (the one way to go back to an older version). */
  pin?: string | null;
  /** Highest serial and version accepted; default <root>/var/lib/tabula/trust.json. */
  trust?: TrustStore;
  bandwidthKBps?: number;
  rsyncPath?: string;
  /** How long the fleet server may stay silent before a fetch stops (default {@link IO_TIMEOUT_SECONDS}); tests make it short. */
  ioTimeoutSeconds?: number;
  onProgress?: (p: ImageUpdateProgress) => void;
}

export interface PullResult {
  version: string;
  bytesReceived: number;
  filesHashed: number;
  filesReused: number;
}

/**
 * rsync keeps an interrupted file's data here: a folder beside the tree, never inside it, given to
 * rsync as an absolute path. A relative `--partial-dir` would be a name inside the tree that the
 * check has to skip, and a server could plant a file (a setuid binary, a link) under that name.
 * No name in the tree is exempt from the manifest.
 */
const partialDataDir = (dest: string) => path.join(dest, 'rsync-partial');

export function createRsyncTreeBackend(options: RsyncTreeOptions) {
  // One ssh connection for the channel, the manifest and the tree (each new one costs ~0.3 s): one
  // server, so one name for it in its own folder.
  let controlDir: string | null = null;
  const viaSsh = options.source.url.startsWith('ssh://');
  if (viaSsh) controlDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-ssh-'));
  const opts: RsyncTreeOptions = viaSsh
    ? { ...options, source: { ...options.source, sshOptions: [...options.source.sshOptions, '-o', 'ControlMaster=auto', '-o', `ControlPath=${controlDir}/fleet`, '-o', 'ControlPersist=15'] } }
    : options;
  const base = path.join(opts.root, 'var/lib/tabula');
  const deploymentsDir = path.join(base, 'deployments');
  const nextLink = path.join(base, 'next');
  const resetMarker = path.join(base, 'reset-on-boot');
  const trust = opts.trust ?? createTrustStore(path.join(base, 'trust.json'));
  const channelKey = `channel:${opts.channel}`;
  let running: RsyncRun | null = null;

  const dirOf = (version: string) => path.join(deploymentsDir, version);
  /**
   * The deployments are root's alone: through /var (writable) an account owning a folder in the image
   * could otherwise change a tree that boots as `/` (read-only there), or swap a link into one being
   * built while root sets its modes. Made so on every pull and reimage, also on laptops made before.
   */
  const rootOnly = (dir: string) => {
    fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
    fs.mkdirSync(dir, { recursive: true });
    fs.chmodSync(dir, 0o700);
  };
  const nextVersion = (): string | null => {
    const t = readSymlink(nextLink);
    return t ? path.basename(t) : null;
  };
  const deployed = (): string[] => {
    try {
      return fs.readdirSync(deploymentsDir).filter((n) => versionPattern.test(n) && !n.endsWith('.partial') && !n.endsWith('.pristine') && fs.existsSync(path.join(deploymentsDir, n, 'manifest.json')));
    } catch {
      return [];
    }
  };
  const deployedAt = (v: string) => fs.statSync(path.join(dirOf(v), 'manifest.json')).mtimeMs;
  const describe = (v: string | null): ImageDeployment | null => {
    if (!v || !fs.existsSync(path.join(dirOf(v), 'manifest.json'))) return v ? { version: v, checksum: null } : null;
    return { version: v, checksum: crypto.createHash('sha256').update(fs.readFileSync(path.join(dirOf(v), 'manifest.json'))).digest('hex') };
  };
  const booted = (): string | null => readBootedMarker(opts.root);
  const loadVerifiedManifest = (v: string): Manifest | null => {
    try {
      return parseManifest(fs.readFileSync(path.join(dirOf(v), 'manifest.json')));
    } catch {
      return null;
    }
  };

  function rollbackTarget(): string | null {
    const next = nextVersion();
    const b = booted();
    if (next && b && next !== b && deployed().includes(b)) return b;
    const others = deployed()
      .filter((v) => v !== next)
      .sort((a, c) => deployedAt(c) - deployedAt(a));
    return others[0] ?? null;
  }

  async function fetchSigned(rel: string, what: string): Promise<{ data: Buffer; sig: Buffer }> {
    const [data, sig] = await fetchFleetFiles(opts.source, [rel, `${rel}.sig`], { rsyncPath: opts.rsyncPath, ioTimeoutSeconds: opts.ioTimeoutSeconds });
    if (!data) throw new TabulaError('image-invalid', `${what} is missing on the fleet server (${rel}).`, { retryable: true });
    requireSignature(data, sig ? sig.toString('utf8') : null, opts.trustedKeys, what);
    return { data, sig: sig! };
  }

  /**
   * The version to install: the channel's (signature, serial, expiry and version checked against
   * what was accepted before), or the policy's pin.
   */
  async function check(): Promise<ImageDeployment> {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(opts.channel)) throw new TabulaError('image-not-configured', `The channel name "${opts.channel}" is not valid.`);
    const what = `The channel file for "${opts.channel}"`;
    const { data: bytes } = await fetchSigned(`channels/${opts.channel}.json`, what);
    const parsed = parseJsonDocument(bytes, channelSchema);
    if (!parsed.ok || parsed.value.channel !== opts.channel) {
      const missing = !parsed.ok && /^has an invalid value at "(serial|expires)"/.test(parsed.problem);
      throw new TabulaError('image-invalid', missing ? `${what} has no valid serial or expiry (published by an older tabula-fleet?): refused. Publish again.` : `${what} ${parsed.ok ? `names the channel "${parsed.value.channel}"` : parsed.problem}: refused.`);
    }
    const ch = parsed.value;
    trust.accept(channelKey, 'channel', bytes, { serial: ch.serial, expires: ch.expires });
    const version = opts.pin ?? ch.version;
    trust.acceptVersion(version, opts.pin ?? null);
    return { version, checksum: null };
  }

  /** The serial and expiry of the channel file last accepted. */
  function serverData(): ServerData | null {
    try {
      const r = trust.load().accepted[channelKey];
      return r ? { serial: r.serial, expires: r.expires } : null;
    } catch {
      return null;
    }
  }

  /**
   * The delta path, when a deployment is on the machine: the signed manifests of both versions say
   * which files changed. Folders and links are made from the manifest, the unchanged files come from
   * the local deployment, and rsync fetches only the rest (`--files-from`), so not even the file list
   * of the whole tree crosses the wire. Everything is then checked against the manifest.
   * - `link` (an update; `previous` was verified when it was made and is never written): unchanged
   *   files are hard-linked (no bytes, no disk).
   * - `copy` (a reimage; `previous` is the running tree, which may have been altered): each file is
   *   copied, never linked, hashed as it is written and kept only when it is the manifest's; one
   *   that differs is fetched again. Its manifest (null when unreadable) only spares copying files
   *   known to have changed.
   */
  async function fetchChanged(version: string, dest: string, previous: { dir: string; manifest: Manifest | null }, how: 'link' | 'copy'): Promise<PullResult> {
    const { data: manifestBytes, sig } = await fetchSigned(`images/${version}/manifest.json`, `The manifest of image ${version}`);
    const manifest = parseManifest(manifestBytes, version);
    const treeDir = path.join(dest, 'tree');
    const prevTree = path.join(previous.dir, 'tree');
    const prevEntries = new Map((previous.manifest?.entries ?? []).map((e) => [e.path, e]));
    const copied = new Map<string, string>();
    // A reimage reads the whole running tree: say how far it is.
    const fileBytes = manifest.entries.reduce((n, e) => n + e.size, 0);
    let readBytes = 0;
    let said = 0;
    fs.mkdirSync(treeDir, { recursive: true, mode: 0o755 });
    // The tree becomes `/` at boot: 0755 whatever the caller's umask (a 0700 root stops every
    // service that runs as its own user, e.g. dbus and systemd-networkd, at chdir).
    fs.chmodSync(treeDir, 0o755);
    const toFetch: string[] = [];
    const links: ManifestEntry[] = [];
    let changedBytes = 0;
    // Parents come before their children in a parsed manifest, and every path was checked there.
    for (const e of manifest.entries) {
      const target = path.join(treeDir, e.path);
      const existing = lstatOrNull(target);
      if (e.type === 'dir') {
        if (!existing) fs.mkdirSync(target);
        else if (!existing.isDirectory()) throw new TabulaError('image-invalid', `${e.path} in the partial download is not a folder: starting over next time.`);
        fs.chmodSync(target, e.mode);
        if (e.uid !== undefined && e.gid !== undefined) fs.lchownSync(target, e.uid, e.gid);
        continue;
      }
      if (e.type === 'symlink') {
        // Made once rsync is done: a link (to / or anywhere) is never in the way of what it writes.
        if (!existing) links.push(e);
        else if (e.uid !== undefined && e.gid !== undefined) fs.lchownSync(target, e.uid, e.gid);
        continue;
      }
      const prev = prevEntries.get(e.path);
      if (how === 'copy' && !existing && (!previous.manifest || (prev?.type === 'file' && prev.sha256 === e.sha256))) {
        const proof = copyIfMatches(path.join(prevTree, e.path), target, e);
        readBytes += e.size;
        if (Date.now() - said > 1000) {
          said = Date.now();
          opts.onProgress?.({ phase: 'verifying', bytesDone: readBytes, bytesTotal: fileBytes, percent: Math.floor((100 * readBytes) / Math.max(1, fileBytes)) });
          await new Promise((resolve) => setImmediate(resolve)); // the progress goes out now
        }
        if (proof) {
          copied.set(e.path, proof);
          continue;
        }
      }
      if (how === 'link' && !existing && prev?.type === 'file' && prev.sha256 === e.sha256 && prev.mode === e.mode && prev.uid === e.uid && prev.gid === e.gid) {
        try {
          fs.linkSync(path.join(prevTree, e.path), target);
          continue;
        } catch {
          /* not linkable (gone, another file system): fetch it */
        }
      }
      // A file left by an interrupted run is listed too: rsync skips it when it is complete.
      toFetch.push(e.path);
      if (!existing || existing.size !== e.size) changedBytes += e.size;
    }
    let bytesReceived = 0;
    let inodes: Map<string, string> | undefined;
    if (toFetch.length) {
      const list = path.join(dest, '.tabula-files-from');
      // NUL-separated: a file name may hold any byte but NUL (the manifest refuses NUL).
      fs.writeFileSync(list, toFetch.join('\0') + '\0');
      const src = parseStorageUrl(opts.source.url);
      const args = [
        '-a',
        '--numeric-ids',
        '--no-D',
        `--partial-dir=${partialDataDir(dest)}`,
        '--stats',
        ...parseableOutput,
        ...(opts.bandwidthKBps ? [`--bwlimit=${opts.bandwidthKBps}`] : []),
        `--files-from=${list}`,
        '--from0',
        '--no-implied-dirs',
        ...(src.kind === 'ssh' ? ['-e', sshCommand(src, opts.source.sshOptions, opts.source.connectTimeoutSeconds)] : []),
        '--',
        rsyncTarget(src, `images/${version}/tree`),
        treeDir + '/',
      ];
      opts.onProgress?.({ phase: 'downloading', bytesDone: 0, bytesTotal: changedBytes, percent: 0 });
      const transfer = rsyncInto(version, args, changedBytes);
      try {
        if (how === 'link') inodes = inodeIndex(prevTree); // while rsync works in its own process
      } catch {
        inodes = undefined;
      }
      bytesReceived = await transfer;
      fs.rmSync(list, { force: true });
    } else if (how === 'link') inodes = inodeIndex(prevTree);
    for (const e of links) {
      const target = path.join(treeDir, e.path);
      fs.symlinkSync(e.target!, target);
      if (e.uid !== undefined && e.gid !== undefined) fs.lchownSync(target, e.uid, e.gid);
    }
    opts.onProgress?.({ phase: 'verifying', bytesDone: fileBytes, bytesTotal: fileBytes, percent: 100 });
    const v = checkTree(treeDir, manifest, how === 'link' ? { previous: { dir: prevTree, manifest: previous.manifest!, inodes } } : { copied });
    if (v.problems.length) throw treeMismatchError(v.problems);
    keepFolderTimes(treeDir, prevTree, manifest);
    writeFileAtomic(path.join(dest, 'manifest.json'), manifestBytes);
    writeFileAtomic(path.join(dest, 'manifest.json.sig'), sig);
    return { version, bytesReceived, filesHashed: v.hashed, filesReused: v.reused };
  }

  /** The full path (first install): rsync the whole tree, then check it against the manifest. */
  async function fetchTree(version: string, dest: string): Promise<PullResult> {
    fs.mkdirSync(path.join(dest, 'tree'), { recursive: true, mode: 0o755 });
    const src = parseStorageUrl(opts.source.url);
    const args = [
      '-a',
      '--hard-links',
      '--numeric-ids',
      '--delete',
      '--no-D', // no device files from the network
      `--partial-dir=${partialDataDir(dest)}`,
      '--stats',
      ...parseableOutput,
      ...(opts.bandwidthKBps ? [`--bwlimit=${opts.bandwidthKBps}`] : []),
      ...(src.kind === 'ssh' ? ['-e', sshCommand(src, opts.source.sshOptions, opts.source.connectTimeoutSeconds)] : []),
      '--',
      rsyncTarget(src, `images/${version}/tree`),
      path.join(dest, 'tree') + '/',
    ];
    opts.onProgress?.({ phase: 'downloading', bytesDone: 0, bytesTotal: null, percent: 0 });
    // The signed manifest is fetched while the tree transfers (it hides a round trip); nothing in the
    // partial tree is used before the signature and every file are checked, and a bad signature
    // deletes it.
    const manifestP = fetchSigned(`images/${version}/manifest.json`, `The manifest of image ${version}`).then(({ data, sig }) => ({ data, sig, manifest: parseManifest(data, version) }));
    manifestP.catch(() => {});
    let bytesReceived: number;
    try {
      bytesReceived = await rsyncInto(version, args, null);
    } catch (err) {
      await manifestP.catch(() => {});
      throw err;
    }
    const { data: manifestBytes, sig, manifest } = await manifestP;
    // rsync gave the top folder the server's mode; the manifest does not list it. It becomes `/`: 0755.
    fs.chmodSync(path.join(dest, 'tree'), 0o755);
    const total = manifest.entries.reduce((n, e) => n + e.size, 0);
    opts.onProgress?.({ phase: 'verifying', bytesDone: total, bytesTotal: total, percent: 100 });
    const v = checkTree(path.join(dest, 'tree'), manifest);
    if (v.problems.length) throw treeMismatchError(v.problems);
    writeFileAtomic(path.join(dest, 'manifest.json'), manifestBytes);
    writeFileAtomic(path.join(dest, 'manifest.json.sig'), sig);
    return { version, bytesReceived, filesHashed: v.hashed, filesReused: v.reused };
  }

  /**
   * The download, with the sync's stall watch: a fleet server whose rsync hangs while its sshd still
   * answers would otherwise hold the pull, and the person waiting on it, for ever.
   */
  async function rsyncInto(version: string, args: string[], total: number | null): Promise<number> {
    let bytesReceived = 0;
    const timeout = opts.ioTimeoutSeconds ?? IO_TIMEOUT_SECONDS;
    running = runRsync(
      [`--timeout=${timeout}`, ...args],
      {
        progress: (p) => opts.onProgress?.({ phase: 'downloading', bytesDone: p.bytesDone, bytesTotal: total, percent: p.percent }),
        other: (line) => {
          const m = /^Total bytes received: ([\d,]+)/.exec(line);
          if (m) bytesReceived = Number(m[1]!.replace(/,/g, ''));
        },
      },
      { rsyncPath: opts.rsyncPath, stallSeconds: timeout },
    );
    const r = await running.done;
    running = null;
    if (r.code !== 0) {
      const e = describeFleetFailure(r, opts.source.url, timeout);
      const cancelled = e.code === 'cancelled';
      throw new TabulaError(cancelled ? 'cancelled' : 'image-unreachable', cancelled ? 'The download was stopped; the next pull resumes where it stopped.' : `Downloading image ${version} failed: ${e.message} The part already downloaded is kept and the next pull resumes.`, { retryable: true });
    }
    return bytesReceived;
  }

  function prune() {
    const keep = new Set([nextVersion(), booted()].filter((v): v is string => !!v));
    const rb = rollbackTarget();
    if (rb) keep.add(rb);
    for (const v of deployed()) if (!keep.has(v)) fs.rmSync(dirOf(v), { recursive: true, force: true });
    // Leftover partial downloads nobody wants any more, and trees a finished reimage replaced.
    for (const n of safeReaddir(deploymentsDir)) {
      const stalePartial = n.endsWith('.partial') && !keep.has(n.slice(0, -'.partial'.length));
      const replaced = n.includes('.replaced-') && !fs.existsSync(resetMarker);
      if (stalePartial || replaced) fs.rmSync(path.join(deploymentsDir, n), { recursive: true, force: true });
    }
  }

  function linkReference(): { dir: string; manifest: Manifest } | null {
    for (const v of [booted(), nextVersion()]) {
      if (!v) continue;
      const manifest = loadVerifiedManifest(v);
      if (manifest) return { dir: dirOf(v), manifest };
    }
    return null;
  }

  return {
    check,
    serverData,
    status(): DeploymentsStatus {
      const b = booted();
      const next = nextVersion();
      return {
        backend: 'rsync-tree',
        booted: describe(b ?? next),
        staged: next && next !== b && b !== null ? describe(next) : null,
        rollback: describe(rollbackTarget()),
        reimagePending: fs.existsSync(resetMarker),
      };
    },
    /** Pulls (or resumes) `version` (default: the channel's), verifies it and makes it the next boot. */
    async stage(version?: string): Promise<PullResult> {
      const v = version ?? (await check()).version;
      if (!versionPattern.test(v)) throw new TabulaError('invalid-argument', `"${v}" is not a valid image version.`);
      if (version !== undefined) trust.acceptVersion(v, opts.pin ?? null);
      rootOnly(deploymentsDir);
      if (deployed().includes(v)) {
        if (nextVersion() !== v) switchSymlink(nextLink, `deployments/${v}`);
        prune();
        return { version: v, bytesReceived: 0, filesHashed: 0, filesReused: 0 };
      }
      const partial = `${dirOf(v)}.partial`;
      const reference = linkReference();
      let result: PullResult;
      try {
        result = reference ? await fetchChanged(v, partial, reference, 'link') : await fetchTree(v, partial);
      } catch (err) {
        // Content that failed verification is hostile: never keep it for a resume.
        if (err instanceof TabulaError && (err.code === 'image-invalid' || err.code === 'signature-invalid')) fs.rmSync(partial, { recursive: true, force: true });
        throw err;
      }
      opts.onProgress?.({ phase: 'deploying', bytesDone: 0, bytesTotal: null, percent: 100 });
      fs.renameSync(partial, dirOf(v));
      switchSymlink(nextLink, `deployments/${v}`);
      prune();
      return result;
    },
    /** Switches the next boot back (to the booted version when one is staged, else to the previous one). */
    rollback(): DeploymentsStatus {
      const target = rollbackTarget();
      if (!target) throw new TabulaError('image-invalid', 'There is no previous image version on this machine to go back to.');
      switchSymlink(nextLink, `deployments/${target}`);
      return this.status();
    },
    /**
     * Factory reset: a fresh copy of the current version (no hard links to the running tree, so a
     * file altered in place cannot survive), verified in full, made the next boot, and the marker
     * that makes the next boot start with empty /etc and /var state. /home is not touched.
     * `version`: the caller checked the channel already and chose this one (see boot-entries.ts).
     */
    async reimage(version?: string): Promise<PullResult> {
      const v = version ?? (await check()).version;
      if (!versionPattern.test(v)) throw new TabulaError('invalid-argument', `"${v}" is not a valid image version.`);
      rootOnly(deploymentsDir);
      const fresh = `${dirOf(v)}.pristine`;
      fs.rmSync(fresh, { recursive: true, force: true });
      // What is on the machine already (this version's tree, else the running one) is copied where it
      // is still the image's; only the rest crosses the network.
      const local = [v, booted()].find((x): x is string => !!x && fs.existsSync(path.join(dirOf(x), 'tree')));
      let result: PullResult;
      try {
        result = local ? await fetchChanged(v, fresh, { dir: dirOf(local), manifest: loadVerifiedManifest(local) }, 'copy') : await fetchTree(v, fresh);
      } catch (err) {
        fs.rmSync(fresh, { recursive: true, force: true });
        throw err;
      }
      // The reset is asked for first: a laptop stopped between the renames below still starts with
      // /etc and /var reset, as the helpdesk asked, never with the old ones on a fresh tree.
      writeFileAtomic(resetMarker, JSON.stringify({ version: v, requestedAt: new Date().toISOString(), reset: ['/etc', '/var'] }) + '\n', 0o600);
      // The old copy of v may be the booted tree: move it aside, keep it until the reboot.
      const b = booted();
      if (fs.existsSync(dirOf(v))) {
        if (v === b) fs.renameSync(dirOf(v), path.join(deploymentsDir, `${v}.replaced-${Date.now()}`));
        else fs.rmSync(dirOf(v), { recursive: true, force: true });
      }
      fs.renameSync(fresh, dirOf(v));
      switchSymlink(nextLink, `deployments/${v}`);
      return result;
    },
    cancel() {
      running?.cancel();
    },
    /**
     * Ends the shared ssh connection now: after a stall it would hold the server's hung session, and
     * its ssh process here, for ever (ControlPersist counts only from the last session's end).
     */
    close() {
      if (!controlDir) return;
      spawnSync('ssh', ['-o', `ControlPath=${controlDir}/fleet`, '-O', 'exit', 'fleet'], { stdio: 'ignore', timeout: 10_000 });
      fs.rmSync(controlDir, { recursive: true, force: true });
      controlDir = null;
    },
    /** Reads a deployment's verified manifest (for tests and diagnostics). */
    manifestOf: loadVerifiedManifest,
    paths: { base, deploymentsDir, nextLink, resetMarker },
  };
}
export type RsyncTreeBackend = ReturnType<typeof createRsyncTreeBackend>;

/**
 * Folder times on the delta path. The manifest has none, and a folder made or filled here is newer
 * than everything in the image: systemd reads a /usr newer than the image's own /etc/.updated as
 * "/usr was updated offline" (ConditionNeedsUpdate) and reran ldconfig and the journal catalog's
 * rebuild at every boot of such a deployment. Each folder takes the time it has in the previous
 * deployment (the server's, as the full download keeps them); set last, as filling a folder changes
 * its time. The tree was checked against the manifest: every listed folder is a folder.
 */
function keepFolderTimes(treeDir: string, prevTree: string, manifest: Manifest) {
  for (const rel of ['', ...manifest.entries.filter((e) => e.type === 'dir').map((e) => e.path)]) {
    const prev = lstatOrNull(path.join(prevTree, rel));
    if (prev?.isDirectory()) fs.utimesSync(path.join(treeDir, rel), prev.atime, prev.mtime);
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

