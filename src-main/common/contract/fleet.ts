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
}


export const fleetMethods = {
  'fleet.poll': method<{ record: FleetCommandRecord | null }>()(noArgs),
};

export interface FleetEventPayloads {
  'fleet-command-handled': FleetCommandRecord;
}
