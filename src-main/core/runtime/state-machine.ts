// State transitions as systemd and Syncthing record them: from → to, the reason, and how long the
// state that ends lasted. Every feature's status moves through here, so no state (an error above
// all) is ever entered without a reason a person can read; the feature publishes the transition
// as its numbered event.

export interface Stateful<S extends string> {
  state: S;
  reason: string;
  /** When the current state was entered (ISO). */
  since: string;
}

export interface Transition<S extends string> {
  from: S;
  to: S;
  reason: string;
  /** How long `from` had lasted (when the state stays and only the reason changes, it goes on: `since` is kept). */
  durationMs: number;
}

/** `status` moved to `to` at `at` (ms), with `patch` applied; throws on a missing reason (a bug, not a user error). */
export function transition<T extends Stateful<string>>(status: T, to: T['state'], reason: string, at: number, patch: Partial<T> = {}): { status: T; change: Transition<T['state']> } {
  if (!reason.trim()) throw new Error(`State ${to} entered without a reason`);
  const from = status.state;
  const durationMs = Math.max(0, at - Date.parse(status.since));
  const next: T = { ...status, ...patch, state: to, reason, since: from === to ? status.since : new Date(at).toISOString() };
  return { status: next, change: { from, to, reason, durationMs } };
}
