// The helpdesk's part of the contract: what a reset would do and whether the home is safe, the
// countdown, and the diagnostics bundle. Spread into `methods` and `EventPayloads` in contract/index.ts.
import { z } from 'zod';
import type { ImageUpdateStatus } from './image';
import { method, noArgs } from './method';

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
  /** The reset as it stands (a window opened later sees a waiting fleet reimage too). */
  reimage: ReimageStatus;
}

export interface ReimageStatus {
  /** waiting: a signed fleet reimage waits for the home's files to be backed up, then runs by itself. */
  state: 'none' | 'waiting' | 'countdown' | 'running' | 'done' | 'failed' | 'cancelled';
  reason: string;
  /** When the countdown ends (ISO). */
  startsAt: string | null;
  origin: 'helpdesk' | 'fleet-command' | null;
}

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

export interface HelpdeskEventPayloads {
  'reimage-changed': ReimageStatus;
}
