// What `tabula-fleet` writes: static files any web server, rsync module or CDN can serve.
//   rsync-tree: images/<version>/tree/, images/<version>/manifest.json(.sig), channels/<channel>.json(.sig)
//   ostree:     repo/ (archive mode, commits and summary signed with GPG), channels/<channel>.json(.sig)
//   commands:   commands/<machine-id>.json(.sig)
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TabulaError } from './common/errors';
import { writeFileAtomic } from './core/atomic-file';
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

export function writeChannel(outDir: string, channel: string, version: string, privateKeyPem: string): void {
  const body = JSON.stringify({ format: 'tabula-channel-1', channel, version, publishedAt: new Date().toISOString() }, null, 1) + '\n';
  writeSigned(path.join(outDir, 'channels', `${channel}.json`), body, privateKeyPem);
}

export function publishRsyncTree(o: { treeDir: string; outDir: string; version: string; channel: string; privateKeyPem: string }): { files: number; bytes: number } {
  checkNames(o.version, o.channel);
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
  writeChannel(o.outDir, o.channel, o.version, o.privateKeyPem);
  const files = manifest.entries.filter((e) => e.type === 'file');
  return { files: files.length, bytes: files.reduce((n, e) => n + e.size, 0) };
}

export interface GpgKey {
  homedir: string;
  keyId: string;
}

export function publishOstree(o: { treeDir: string; outDir: string; version: string; channel: string; ref: string; gpg: GpgKey; privateKeyPem?: string }): { commit: string } {
  checkNames(o.version, o.channel);
  const repo = path.join(o.outDir, 'repo');
  if (!fs.existsSync(path.join(repo, 'config'))) {
    fs.mkdirSync(repo, { recursive: true });
    execFileSync('ostree', ['init', `--repo=${repo}`, '--mode=archive']);
  }
  const gpgArgs = [`--gpg-sign=${o.gpg.keyId}`, `--gpg-homedir=${o.gpg.homedir}`];
  const commit = execFileSync('ostree', [`--repo=${repo}`, 'commit', `--branch=${o.ref}`, `--subject=Tabula ${o.version}`, `--add-metadata-string=version=${o.version}`, ...gpgArgs, `--tree=dir=${o.treeDir}`], { encoding: 'utf8' }).trim();
  // The summary lists refs (a client checks it before pulling); it is signed too.
  execFileSync('ostree', [`--repo=${repo}`, 'summary', '-u', ...gpgArgs]);
  if (o.privateKeyPem) writeChannel(o.outDir, o.channel, o.version, o.privateKeyPem);
  return { commit };
}

export function newNonce(): string {
  return crypto.randomBytes(16).toString('hex');
}
