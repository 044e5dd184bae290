// What tabula-helper does, as a function: the closed verb set (status, check, stage, rollback,
// reimage, reimage-signed), argument checking, and the backend built from the system config.
// helper.ts is its thin process wrapper (pkexec); tests call the same code as root.
import fs from 'node:fs';
import path from 'node:path';
import type { DeploymentsStatus, ImageDeployment, ImageUpdateProgress } from '../../common/contract/image';
import { TabulaError, toErrorInfo } from '../../common/errors';
import { loadConfig } from '../config';
import { createTrustStore, type ServerData } from './freshness';
import { applyPolicy, fetchPolicy, pinOf } from './policy';
import { resolvePaths } from '../paths';
import { createOstreeBackend } from './ostree';
import { createRsyncTreeBackend } from './rsync-tree';
import { withBootEntries } from './boot-entries';
import { offerIsNew, type HelperResult } from './helper-protocol';
import { verifyFleetCommand, type SignedCommand } from '../fleet-command';
import { readJsonDocument, writeFileAtomic } from '../atomic-file';
import { z } from 'zod';
import type { MachineIdentity } from '../../common/contract/helpdesk';

/**
 * One word each, always argv[1]: polkit tells pkexec'd actions apart by argv1 only, so `check`
 * (root contacts the fleet server) is its own verb with its own rule, not an option of `status`.
 * `pull` is check, then stage when the offer is new, in one run: one process start and one look at
 * the server instead of two (a person's pull; the schedule's when it cannot undo a rollback).
 */
export const helperVerbs = ['status', 'check', 'stage', 'pull', 'rollback', 'reimage', 'reimage-signed'] as const;
export type HelperVerb = (typeof helperVerbs)[number];

export interface HelperRequest {
  verb: HelperVerb;
  /** reimage-signed: the fleet command as it arrived (read from stdin), checked here before anything runs. */
  signed?: SignedCommand;
}

export type { HelperResult } from './helper-protocol';

/** Parses argv strictly: exactly one known verb, nothing else. */
export function parseHelperArgs(argv: readonly string[]): HelperRequest {
  const usage = () => new TabulaError('invalid-argument', `Usage: tabula-helper ${helperVerbs.join('|')}. Got: ${JSON.stringify(argv.slice(0, 4)).slice(0, 200)}`);
  if (argv.length !== 1) throw usage();
  const verb = argv[0]!;
  if (!(helperVerbs as readonly string[]).includes(verb)) throw usage();
  return { verb: verb as HelperVerb };
}

export interface ImageBackend {
  status(): Promise<DeploymentsStatus>;
  check(): Promise<ImageDeployment>;
  /** The serial and expiry of the update server's data last accepted. */
  serverData(): Promise<ServerData | null>;
  /** `offer`: what check() returned earlier in this same run; the server is not asked again for it. */
  stage(offer?: ImageDeployment): Promise<{ version: string; bytesReceived: number }>;
  rollback(): Promise<DeploymentsStatus>;
  /** `note`: why the reset lays down another version than the channel names (it failed to start here). */
  reimage(): Promise<{ version: string; bytesReceived: number; note?: string }>;
  close?(): void;
}

/**
 * The backend the system config names, rooted at `root`: only root-owned config layers, plus the
 * fleet policy when one is published, verifies and is fresh (otherwise it is not used). The
 * root-owned trust record keeps the highest serials and version accepted.
 */
export async function backendFromSystemConfig(root: string, onProgress?: (p: ImageUpdateProgress) => void): Promise<ImageBackend> {
  const paths = resolvePaths({ TABULA_ROOT: root, HOME: '/nonexistent' });
  const base = loadConfig(paths, { systemOnly: true }).config;
  const trust = createTrustStore(path.join(root, 'var/lib/tabula/trust.json'));
  const policy = await fetchPolicy(base, trust).catch(() => null);
  const config = applyPolicy(base, policy);
  const pin = pinOf(base, policy);
  const img = config.image;
  if (img.backend === 'none' || !img.url) throw new TabulaError('image-not-configured', 'This machine has no image source configured (image.backend and image.url in the image config).');
  if (img.backend === 'ostree') {
    const b = createOstreeBackend({
      sysroot: root,
      url: img.url,
      ref: img.ostreeRef,
      osName: img.ostreeOsName,
      gpgKeyring: path.join(root, img.gpgKeyring),
      booted: root === '/' && fsExists('/run/ostree-booted'),
      trust,
      onProgress,
    });
    return b;
  }
  // The boot path (src-main/core/image/boot-entries.ts): one boot entry per kept deployment.
  const b = withBootEntries(root, createRsyncTreeBackend({
    root,
    source: { url: img.url, sshOptions: img.sshOptions, connectTimeoutSeconds: img.connectTimeoutSeconds },
    channel: img.channel,
    trustedKeys: config.fleet.trustedKeys,
    pin,
    trust,
    bandwidthKBps: img.bandwidthKBps,
    onProgress,
  }));
  return {
    status: async () => b.status(),
    check: () => b.check(),
    serverData: async () => b.serverData(),
    stage: (offer) => b.stage(offer),
    rollback: async () => b.rollback(),
    reimage: () => b.reimage(),
    close: () => b.close(),
  };
}

function fsExists(p: string): boolean {
  try {
    fs.accessSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Nonces of the signed reimages this machine ran, kept by root outside what a reimage resets. */
export const signedNoncesFile = (root: string) => path.join(root, 'var/lib/tabula/signed-commands.json');
const NONCE_MEMORY_MS = 90 * 24 * 3600_000;

/**
 * A remote reimage is authorised by the fleet's command key, checked here as root: the keys from
 * the root-owned config layers, this machine's id, the expiry, and a nonce never run before
 * (recorded before the reimage starts). The caller (the person's agent) only carries the command:
 * a local user without a signed command for this machine cannot wipe it, and cannot replay one.
 */
export function acceptSignedReimage(root: string, signed: SignedCommand | undefined, identity: Pick<MachineIdentity, 'machineId' | 'primaryMac'>, now = Date.now()): void {
  if (!signed) throw new TabulaError('command-rejected', 'reimage-signed needs the signed fleet command on its standard input: nothing was changed.');
  const paths = resolvePaths({ TABULA_ROOT: root, HOME: '/nonexistent' });
  const config = loadConfig(paths, { systemOnly: true }).config;
  const cmd = verifyFleetCommand(Buffer.from(signed.command, 'base64'), Buffer.from(signed.signature, 'utf8'), { commandKeys: config.fleet.commandKeys, identity, now });
  if (cmd.verb !== 'reimage') throw new TabulaError('command-rejected', `The fleet command is "${cmd.verb}", not a reimage: rejected.`);
  const file = signedNoncesFile(root);
  const read = readJsonDocument(file, z.record(z.string(), z.string()));
  if (read.status === 'invalid') throw new TabulaError('command-rejected', `The record of signed reimages already run (${file}) ${read.problem}: refused until it is repaired, so that none runs twice.`);
  const seen = read.status === 'ok' ? read.value : {};
  if (seen[cmd.nonce]) throw new TabulaError('command-rejected', `Replay: this reimage (nonce ${cmd.nonce.slice(0, 8)}…) already ran at ${seen[cmd.nonce]}: rejected.`);
  const kept = Object.fromEntries(Object.entries(seen).filter(([, at]) => now - Date.parse(at) < NONCE_MEMORY_MS));
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  writeFileAtomic(file, JSON.stringify({ ...kept, [cmd.nonce]: new Date(now).toISOString() }, null, 1) + '\n', 0o600);
}

export async function runHelperVerb(req: HelperRequest, root: string, onProgress?: (p: ImageUpdateProgress) => void, identity?: Pick<MachineIdentity, 'machineId' | 'primaryMac'>): Promise<HelperResult> {
  if (req.verb === 'reimage-signed') acceptSignedReimage(root, req.signed, identity ?? { machineId: null, primaryMac: null });
  // A pull's progress names the version its own check found (the agent has not seen it yet).
  let offered: string | undefined;
  const backend = await backendFromSystemConfig(root, onProgress && ((p) => onProgress(offered ? { ...p, version: offered } : p)));
  try {
    return await runOn(backend, req, (v) => (offered = v));
  } finally {
    backend.close?.();
  }
}

async function runOn(backend: ImageBackend, req: HelperRequest, offering: (version: string) => void): Promise<HelperResult> {
  switch (req.verb) {
    case 'status':
    case 'check': {
      const deployments = await backend.status();
      const available = req.verb === 'check' ? await backend.check() : null;
      return { verb: 'status', deployments, available, serverData: await backend.serverData() };
    }
    case 'pull': {
      // The same checks as `check` then `stage`, in that order: status (a failed boot is assessed
      // first), the signed offer, the rule the agent applies; the backend's stage refuses as before.
      const before = await backend.status();
      const available = await backend.check();
      if (!offerIsNew(available, before)) return { verb: 'pull', deployments: before, available, serverData: await backend.serverData(), pulled: null };
      offering(available.version);
      let r: { version: string; bytesReceived: number };
      try {
        r = await backend.stage(available);
      } catch (err) {
        // The check held: its offer goes back with the failure, so that the agent records when it
        // checked and what was on offer, as after a `check` and a failed `stage`.
        return { verb: 'pull', deployments: await backend.status().catch(() => before), available, serverData: await backend.serverData(), pulled: null, stageFailed: toErrorInfo(err) };
      }
      return { verb: 'pull', deployments: await backend.status(), available, serverData: await backend.serverData(), pulled: { version: r.version, bytesReceived: r.bytesReceived } };
    }
    case 'stage':
    case 'reimage':
    case 'reimage-signed': {
      if (req.verb === 'stage') return { verb: 'stage', ...(await backend.stage()), deployments: await backend.status() };
      const r = await backend.reimage();
      return { verb: req.verb, version: r.version, bytesReceived: r.bytesReceived, ...(r.note ? { note: r.note } : {}), deployments: await backend.status() };
    }
    case 'rollback':
      return { verb: 'rollback', deployments: await backend.rollback() };
  }
}
