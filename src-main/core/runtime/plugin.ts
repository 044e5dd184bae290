// The one shape every feature of the agent has (systemd units, VS Code contributions): it declares
// its part of the contract and serves it, reports its status, and is started and stopped by the
// agent. Features never call each other; where one needs another, the agent hands it a port.
import type { Handlers, MethodName } from '../../common/contract';

export type FeatureName = 'sync' | 'image' | 'fleet' | 'helpdesk' | 'prefs';
export const allFeatures: readonly FeatureName[] = ['sync', 'image', 'fleet', 'helpdesk', 'prefs'];

export interface FeaturePlugin<C extends Partial<Record<MethodName, unknown>>, S> {
  name: FeatureName;
  /** Its methods (from its file under common/contract/); the agent serves exactly these. */
  contract: C;
  handlers: Pick<Handlers, keyof C & MethodName>;
  status(): S;
  /** Timers, watchers and queued work begin here, not at construction: a command may never start them. */
  start(): void;
  /** Stops timers and cancels work in progress; resolves once the work has stopped. */
  stop(): Promise<void>;
}
