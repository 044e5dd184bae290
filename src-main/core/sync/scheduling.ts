// When the sync runs by itself, on the runtime's Schedule: every intervalMinutes, retried with a
// jittered, doubling back-off while the storage cannot be reached, and waiting (with a reason) on a
// metered network or a low battery unless the person asked.
import type { TabulaConfig } from '../config';
import type { Clock } from '../runtime/clock';
import type { Journal } from '../runtime/journal';
import type { Probes } from '../runtime/probes';
import { createSchedule, type SchedulePolicy } from '../runtime/schedule';
import { personAsked } from './journal';

/** While deferred, look again this often. */
const DEFER_RETRY_MS = 5 * 60_000;

export function syncPolicy(backup: TabulaConfig['backup']): SchedulePolicy {
  return {
    intervalMs: backup.intervalMinutes * 60_000,
    // A laptop syncs its own home: no fleet-wide window to spread, only the back-off is jittered.
    windowMs: 0,
    deferOnMetered: backup.deferOnMetered,
    minBatteryPercent: backup.minBatteryPercent,
    backoffBaseMs: backup.retryMinSeconds * 1000,
    backoffMaxMs: backup.retryMaxSeconds * 1000,
    deferRetryMs: DEFER_RETRY_MS,
  };
}

/** Why automatic runs should wait now (metered network, low battery), or null. */
export async function syncDeferral(probes: Probes, backup: TabulaConfig['backup']): Promise<string | null> {
  const [power, metered] = await Promise.all([probes.power().catch(() => null), probes.metered().catch(() => null)]);
  if (backup.deferOnMetered && metered) return 'The connection is metered: automatic syncs wait for another network. “Back up now” still runs.';
  if (power && power.batteryPercent !== null && !power.charging && power.batteryPercent < backup.minBatteryPercent) {
    return `The battery is at ${power.batteryPercent}%: automatic syncs wait until it is charging or above ${backup.minBatteryPercent}%. “Back up now” still runs.`;
  }
  return null;
}

export interface SyncScheduleDeps {
  clock: Clock;
  backup: () => TabulaConfig['backup'];
  journal: Journal;
  probes?: Probes;
  /** Runs what the journal holds; false on a failure worth retrying. */
  run: () => Promise<boolean>;
  /** An automatic run waits, with the reason a person reads. */
  deferred: (why: string) => void;
  /** The next try moved (null: none armed). */
  nextChanged: (nextAt: number | null) => void;
  /** A run ended and the next one is armed. */
  afterRun: (nextAt: number | null) => void;
}

/**
 * The sync's one timer: the interval queues a request of its own (not kept on disk), a request a
 * person made never waits for a better network or more battery, and a request made during a run
 * is answered by one more run afterwards.
 */
export function createSyncSchedule({ clock, backup, journal, probes, run, deferred, nextChanged, afterRun }: SyncScheduleDeps) {
  return createSchedule({
    clock,
    policy: () => syncPolicy(backup()),
    // "Back up now" during a run is not answered by that run: it runs once more afterwards.
    whileRunning: 'queue',
    async deferral(trigger) {
      if (trigger === 'timer' && journal.pending() === 0) journal.add('schedule', { persist: false });
      if (!probes || journal.paused() || journal.pending() === 0 || personAsked(journal)) return null;
      const why = await syncDeferral(probes, backup());
      if (why) deferred(why);
      return why;
    },
    run,
    onChange: ({ nextAt }) => nextChanged(nextAt),
    afterRun: (_ok, nextAt) => afterRun(nextAt),
  });
}
