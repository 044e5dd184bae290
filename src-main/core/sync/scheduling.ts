// When the sync runs by itself, on the runtime's Schedule: every intervalMinutes, retried with a
// jittered, doubling back-off while the storage cannot be reached, and waiting (with a reason) on a
// metered network or a low battery unless the person asked.
import type { TabulaConfig } from '../config';
import type { Probes } from '../runtime/probes';
import type { SchedulePolicy } from '../runtime/schedule';

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
