// Signed per-machine fleet commands: what was received and what became of it.
// Spread into `methods` and `EventPayloads` in contract/index.ts.
import { method, noArgs } from './method';

export interface FleetCommandRecord {
  nonce: string;
  /** What the command said it was; 'unknown' for a rejected one that did not say (or said nonsense). */
  verb: 'reimage' | 'pull' | 'diagnostics' | 'unknown';
  receivedAt: string;
  outcome: 'done' | 'refused' | 'failed' | 'rejected';
  message: string;
  /**
   * A reimage refused because the home has files not on the storage yet is not spent: it waits
   * (still bound to this machine, its signature and expiry) and runs once they are backed up, at
   * most once. Set while it waits: when it stops waiting (its expiry).
   */
  waitingUntil?: string;
}


export const fleetMethods = {
  'fleet.poll': method<{ record: FleetCommandRecord | null }>()(noArgs),
};

export interface FleetEventPayloads {
  'fleet-command-handled': FleetCommandRecord;
}
