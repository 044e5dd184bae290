// Contract for OS images (issue 4): update status, check, pull and rollback. Spread into `methods` and `EventPayloads` in contract/index.ts.
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
  /** The version being fetched, where the helper found it itself (a pull checks in the same run). */
  version?: string;
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
  /** A version that failed to start here (never staged or laid down again), and what booted instead. */
  failedBoot?: { version: string; bootedInstead: string } | null;
  /** Why the pending reset lays down another version than the channel names (that one failed to start here). */
  reimageNote?: string | null;
  lastError: ErrorInfo | null;
  /** The fleet policy was published but could not be trusted (it is ignored), and why. */
  policyProblem: string | null;
  /** What the update server last sent that this machine accepted; past `expires` the state is stale. */
  serverData: ImageServerData | null;
  /**
   * The newest event's id when this answer was made (not in events): a window drops an answer older
   * than an event it already shows (a check's answer that arrives after the pull it started said so).
   */
  asOfEvent?: number;
}


export const imageMethods = {
  'image.status': method<ImageUpdateStatus>()(noArgs),
  /** Asks the fleet server now (ignores the schedule's deferrals: the person asked). */
  'image.check': method<ImageUpdateStatus>()(noArgs),
  /** Downloads, verifies and stages the available version; resolves when it started. */
  'image.pull': method<{ started: boolean }>()(noArgs),
  'image.rollback': method<ImageUpdateStatus>()(noArgs),
};

export interface ImageEventPayloads {
  'image-state-changed': { from: ImageUpdateState; to: ImageUpdateState; reason: string; durationMs: number; status: ImageUpdateStatus };
  'image-progress': ImageUpdateProgress;
}
