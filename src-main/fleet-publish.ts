// What `tabula-fleet` writes: static files any web server, rsync module or CDN can serve.
//   rsync-tree: images/<version>/tree/, images/<version>/manifest.json(.sig), channels/<channel>.json(.sig)
//   ostree:     repo/ (archive mode, commits and summary signed with GPG), channels/<channel>.json(.sig)
//   commands:   commands/<machine-id>.json(.sig)
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TabulaError } from './common/errors';
import { z } from 'zod';
import { readJsonDocument, writeFileAtomic } from './core/atomic-file';
import { buildManifest, versionPattern } from './core/image/manifest';
import { sign } from './core/signing';

export function writeSigned(file: string, bytes: Buffer | string, privateKeyPem: string): void {
  writeFileAtomic(file, bytes);
  writeFileAtomic(`${file}.sig`, sign(bytes, privateKeyPem) + '\n');
}

function checkNames(version: string, channel: string) {
  if (!versionPattern.test(version)) throw new TabulaError('invalid-argument', `"${version}" is not a valid version (letters, digits, . _ + -).`);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(channel)) throw new TabulaError('invalid-argument', `"${channel}" is not a valid channel name.`);
}

/** How long published channel files, policies and summaries stay valid unless told otherwise. */
export const DEFAULT_VALIDITY_MS = 7 * 86_400_000;

export interface Freshness {
  /** Default: one more than the last published, and at least the current Unix time in seconds. */
  serial?: number;
  /** How long machines accept it (ms); past that they report the server's data as out of date. */
  validForMs?: number;
  now?: Date;
}

/**
 * The next serial: larger than the previous one, and at least the time in seconds, so that it
 * keeps growing even when the publisher's output folder is lost and rebuilt.
 */
export function nextSerial(previous: number | null, now: Date): number {
  return Math.max((previous ?? 0) + 1, Math.floor(now.getTime() / 1000));
}

function stamp(previous: number | null, f: Freshness): { serial: number; expires: string } {
  const now = f.now ?? new Date();
  const serial = f.serial ?? nextSerial(previous, now);
  if (previous !== null && serial <= previous) throw new TabulaError('invalid-argument', `The serial ${serial} is not larger than the published ${previous}; machines would refuse it.`);
  return { serial, expires: new Date(now.getTime() + (f.validForMs ?? DEFAULT_VALIDITY_MS)).toISOString() };
}

/** What the publisher reads back of its own earlier output: the serial (and, to refresh, the version). */
const publishedSchema = z.object({ serial: z.number().int().min(0).optional(), version: z.string().optional() }).passthrough();

/**
 * The serial published before, or null when nothing was. A file there that cannot be read is not
 * taken for "nothing published" (the new serial could then be lower than what machines accepted):
 * it is named, and nothing is signed.
 */
function readPublished(file: string): { serial: number | null; version: string | null } {
  const r = readJsonDocument(file, publishedSchema);
  if (r.status === 'missing') return { serial: null, version: null };
  if (r.status === 'invalid') throw new TabulaError('invalid-argument', `${file}, published before, ${r.problem}: nothing was signed. Restore it from a backup of the fleet server, or remove it and publish with --serial larger than any serial machines accepted.`);
  return { serial: r.value.serial ?? null, version: r.value.version ?? null };
}
const previousSerial = (file: string) => readPublished(file).serial;

export function writeChannel(outDir: string, channel: string, version: string, privateKeyPem: string, f: Freshness = {}): { serial: number; expires: string } {
  const file = path.join(outDir, 'channels', `${channel}.json`);
  const fresh = stamp(previousSerial(file), f);
  const body = JSON.stringify({ format: 'tabula-channel-1', channel, version, publishedAt: (f.now ?? new Date()).toISOString(), ...fresh }, null, 1) + '\n';
  writeSigned(file, body, privateKeyPem);
  return fresh;
}

/** Re-signs a channel's current version with a new serial and expiry (run it before it expires). */
export function refreshChannel(outDir: string, channel: string, privateKeyPem: string, f: Freshness = {}): { version: string; serial: number; expires: string } {
  const file = path.join(outDir, 'channels', `${channel}.json`);
  const { version } = readPublished(file);
  if (!version) throw new TabulaError('invalid-argument', `${file} names no version: publish a version on channel ${channel} first.`);
  return { version, ...writeChannel(outDir, channel, version, privateKeyPem, f) };
}

/** Signs a policy, adding its serial and expiry. */
export function writePolicy(outDir: string, policy: Record<string, unknown>, privateKeyPem: string, f: Freshness = {}): { serial: number; expires: string } {
  const file = path.join(outDir, 'policy.json');
  const fresh = stamp(previousSerial(file), f);
  writeSigned(file, JSON.stringify({ ...policy, ...fresh }, null, 1) + '\n', privateKeyPem);
  return fresh;
}

export function publishRsyncTree(o: { treeDir: string; outDir: string; version: string; channel: string; privateKeyPem: string } & Freshness): { files: number; bytes: number } {
  checkNames(o.version, o.channel);
  // A damaged channel file stops the publication before anything is copied, not halfway.
  readPublished(path.join(o.outDir, 'channels', `${o.channel}.json`));
  const imageDir = path.join(o.outDir, 'images', o.version);
  const dest = path.join(imageDir, 'tree');
  if (fs.existsSync(path.join(imageDir, 'manifest.json'))) throw new TabulaError('invalid-argument', `Version ${o.version} is already published; versions are immutable, publish a new one.`);
  fs.mkdirSync(dest, { recursive: true });
  // Copy with the exact metadata the manifest will describe; --link-dest keeps unchanged files of
  // earlier versions as hard links on the server (no duplicate disk use).
  const earlier = fs.readdirSync(path.join(o.outDir, 'images')).filter((v) => v !== o.version && fs.existsSync(path.join(o.outDir, 'images', v, 'tree')));
  // --checksum: a rebuilt file of the same size and second must never be taken for the old one.
  execFileSync('rsync', ['-a', '--checksum', '--hard-links', '--delete', ...earlier.slice(-5).map((v) => `--link-dest=${path.join(o.outDir, 'images', v, 'tree')}`), '--', o.treeDir.replace(/\/?$/, '/'), dest + '/']);
  const manifest = buildManifest(dest, o.version);
  writeSigned(path.join(imageDir, 'manifest.json'), JSON.stringify(manifest) + '\n', o.privateKeyPem);
  writeChannel(o.outDir, o.channel, o.version, o.privateKeyPem, o);
  const files = manifest.entries.filter((e) => e.type === 'file');
  return { files: files.length, bytes: files.reduce((n, e) => n + e.size, 0) };
}

export interface GpgKey {
  homedir: string;
  keyId: string;
}

export function publishOstree(o: { treeDir: string; outDir: string; version: string; channel: string; ref: string; gpg: GpgKey; privateKeyPem?: string } & Freshness): { commit: string } {
  checkNames(o.version, o.channel);
  readPublished(path.join(o.outDir, 'channels', `${o.channel}.json`));
  const repo = path.join(o.outDir, 'repo');
  if (!fs.existsSync(path.join(repo, 'config'))) {
    fs.mkdirSync(repo, { recursive: true });
    execFileSync('ostree', ['init', `--repo=${repo}`, '--mode=archive']);
  }
  const gpgArgs = [`--gpg-sign=${o.gpg.keyId}`, `--gpg-homedir=${o.gpg.homedir}`];
  // `ostree commit` into an archive repo compresses every file to learn its checksum, even the ones
  // the repo already holds (~25 s of CPU for the lab's 500 MB image, however little changed). So the
  // tree is committed into a scratch bare-user repo (checksums only; no fsync: it is thrown away),
  // and `pull-local` brings into the archive repo only the objects it lacks, compressing just those.
  // The scratch repo sits in the repo's own tmp/ (same file system, which keeps ostree's xattrs).
  fs.mkdirSync(path.join(repo, 'tmp'), { recursive: true });
  const scratch = fs.mkdtempSync(path.join(repo, 'tmp', 'tabula-commit-'));
  let commit: string;
  try {
    execFileSync('ostree', ['init', `--repo=${scratch}`, '--mode=bare-user']);
    const parent = refCommit(repo, o.ref);
    commit = execFileSync('ostree', [`--repo=${scratch}`, 'commit', '--fsync=false', `--branch=${o.ref}`, ...(parent ? [`--parent=${parent}`] : []), `--subject=Tabula ${o.version}`, `--add-metadata-string=version=${o.version}`, ...gpgArgs, `--tree=dir=${o.treeDir}`], { encoding: 'utf8' }).trim();
    execFileSync('ostree', [`--repo=${repo}`, 'pull-local', scratch, o.ref], { stdio: 'ignore' });
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  writeSummary(repo, o.gpg, o);
  if (o.privateKeyPem) writeChannel(o.outDir, o.channel, o.version, o.privateKeyPem, o);
  return { commit };
}

/** The commit `ref` names in `repo`, or null when there is none yet. */
function refCommit(repo: string, ref: string): string | null {
  try {
    return execFileSync('ostree', [`--repo=${repo}`, 'rev-parse', ref], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/**
 * The summary lists refs (a client checks it before pulling); it is GPG-signed and carries a serial
 * and an expiry as summary metadata, checked by the client (a replayed or frozen summary is refused).
 */
export function writeSummary(repo: string, gpg: GpgKey, f: Freshness = {}): { serial: number; expires: string } {
  let previous: number | null = null;
  try {
    const m = /^tabula\.serial: (\d+)$/m.exec(execFileSync('ostree', [`--repo=${repo}`, 'summary', '--view'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
    previous = m ? Number(m[1]) : null;
  } catch {
    previous = null; // no summary yet
  }
  const fresh = stamp(previous, f);
  execFileSync('ostree', [
    `--repo=${repo}`,
    'summary',
    '-u',
    `--add-metadata=tabula.serial=uint64 ${fresh.serial}`,
    `--add-metadata=tabula.expires='${fresh.expires}'`,
    `--gpg-sign=${gpg.keyId}`,
    `--gpg-homedir=${gpg.homedir}`,
  ]);
  return fresh;
}

export function newNonce(): string {
  return crypto.randomBytes(16).toString('hex');
}
