// Contract for OS images (issue 4): update status, check/pull/rollback, helpdesk reimage and the
// signed fleet commands. Spread into `methods` and `EventPayloads` in contract/index.ts.
import { z } from 'zod';
import { method, noArgs } from './method';
import type { ErrorInfo } from '../errors';

export type ImageBackendKind = 'none' | 'ostree' | 'rsync-tree';

export interface ImageDeployment {
  version: string;
  /** ostree commit checksum; for rsync-tree the sha256 of the signed manifest. */
  checksum: string | null;
}

/** What the privileged side reports about the machine's deployments. */
export interface DeploymentsStatus {
  backend: ImageBackendKind;
  booted: ImageDeployment | null;
  /** Deployment the next boot starts, when it differs from the booted one. */
  staged: ImageDeployment | null;
  /** What "rollback" would switch the next boot to. */
  rollback: ImageDeployment | null;
  /** A reimage is waiting for the next boot (/etc and /var will be reset). */
  reimagePending: boolean;
  /** The last staged version that never finished booting: the boot loader went back to `bootedInstead`. */
  failedBoot?: { version: string; bootedInstead: string } | null;
}

/**
 * disabled: no image backend configured; idle: up to date; checking; downloading; verifying;
 * deploying; staged: a new version boots at the next restart; deferred: a check/pull waits (metered,
 * battery…); offline: the fleet server could not be reached; failed: the last check or pull failed;
 * stale: the update server's data has expired or is older than what this machine accepted before
 * (a frozen or replaying server): not "up to date", whatever the versions say.
 */
export type ImageUpdateState = 'disabled' | 'idle' | 'checking' | 'downloading' | 'verifying' | 'deploying' | 'staged' | 'deferred' | 'offline' | 'failed' | 'stale';

/** The serial and expiry of the update server's data this machine last accepted (channel or summary). */
export interface ImageServerData {
  serial: number;
  expires: string;
}

export interface ImageUpdateProgress {
  phase: 'downloading' | 'verifying' | 'deploying';
  bytesDone: number;
  bytesTotal: number | null;
  percent: number;
}

export interface ImageUpdateStatus {
  backend: ImageBackendKind;
  channel: string;
  state: ImageUpdateState;
  /** A sentence for a person, for every state (also idle). */
  reason: string;
  since: string;
  booted: ImageDeployment | null;
  staged: ImageDeployment | null;
  available: ImageDeployment | null;
  rollback: ImageDeployment | null;
  lastCheckAt: string | null;
  nextCheckAt: string | null;
  progress: ImageUpdateProgress | null;
  /** Bytes the last pull actually fetched. */
  lastPullBytes: number | null;
  /** "Restart to update": a staged version (or a reimage) waits for a restart. */
  restartRequired: boolean;
  reimagePending: boolean;
  lastError: ErrorInfo | null;
  /** The fleet policy was published but could not be trusted (it is ignored), and why. */
  policyProblem: string | null;
  /** What the update server last sent that this machine accepted; past `expires` the state is stale. */
  serverData: ImageServerData | null;
}

export interface MachineIdentity {
  hostname: string;
  machineId: string | null;
  primaryMac: string | null;
  machineClass: string;
}

export interface HomeSafetyReport {
  /** Files in the home that are not on the storage yet. */
  count: number;
  paths: string[];
  /** Backup requests waiting to run. */
  queued: number;
  /** Why the answer could not be established (storage offline…): then a reimage is refused too. */
  unknownReason: string | null;
}

export interface ReimagePlan {
  identity: MachineIdentity;
  image: ImageUpdateStatus;
  lastBackupAt: string | null;
  home: HomeSafetyReport;
  /** Refused unless overridden, and why. */
  refusedReason: string | null;
  /** What will happen, in order, for the person to read before confirming. */
  steps: string[];
  countdownSeconds: number;
}

export interface ReimageStatus {
  state: 'none' | 'countdown' | 'running' | 'done' | 'failed' | 'cancelled';
  reason: string;
  /** When the countdown ends (ISO). */
  startsAt: string | null;
  origin: 'helpdesk' | 'fleet-command' | null;
}

export interface FleetCommandRecord {
  nonce: string;
  /** What the command said it was; 'unknown' for a rejected one that did not say (or said nonsense). */
  verb: 'reimage' | 'pull' | 'diagnostics' | 'unknown';
  receivedAt: string;
  outcome: 'done' | 'refused' | 'failed' | 'rejected';
  message: string;
}


export const imageMethods = {
  'image.status': method<ImageUpdateStatus>()(noArgs),
  /** Asks the fleet server now (ignores the schedule's deferrals: the person asked). */
  'image.check': method<ImageUpdateStatus>()(noArgs),
  /** Downloads, verifies and stages the available version; resolves when it started. */
  'image.pull': method<{ started: boolean }>()(noArgs),
  'image.rollback': method<ImageUpdateStatus>()(noArgs),
};

export const helpdeskMethods = {
  'helpdesk.plan': method<ReimagePlan>()(noArgs),
  /** Starts the countdown. `override` only with `acknowledgedCount` = the number of unsynced files shown. */
  'helpdesk.reimage': method<ReimageStatus>()(
    z.object({ override: z.boolean().optional(), acknowledgedCount: z.number().int().min(0).optional() }).strict(),
  ),
  'helpdesk.cancelReimage': method<ReimageStatus>()(noArgs),
  /** Writes the bundle; `text` is its content, for the window's Copy button. */
  'helpdesk.diagnostics': method<{ file: string; text: string }>()(noArgs),
  /** Opens the diagnostics folder in the file manager (the window has no file access of its own). */
  'helpdesk.showDiagnostics': method<{ opened: string }>()(noArgs),
};

export const fleetMethods = {
  'fleet.poll': method<{ record: FleetCommandRecord | null }>()(noArgs),
};

export interface ImageEventPayloads {
  'image-state-changed': { from: ImageUpdateState; to: ImageUpdateState; reason: string; durationMs: number; status: ImageUpdateStatus };
  'image-progress': ImageUpdateProgress;
  'reimage-changed': ReimageStatus;
  'fleet-command-handled': FleetCommandRecord;
}
