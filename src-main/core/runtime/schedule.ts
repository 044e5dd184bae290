// When to check for a new image: every N hours at a random point inside a window (a fleet of
// laptops must not hit the server at once), on network-up and on request; deferred on metered
// networks and on battery below a threshold (unless charging), each with a visible reason; backing
// off after failures. Pure logic plus a clock and probes that are injected: the tests drive it with
// a fake clock and fake probes, the agent with real timers, /sys/class/power_supply and nmcli.

import type { Clock } from './clock';
import type { PowerState, Probes } from './probes';

export interface SchedulePolicy {
  intervalMs: number;
  windowMs: number;
  deferOnMetered: boolean;
  minBatteryPercent: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** How soon to look again while deferred. */
  deferRetryMs: number;
}

/** The reason a check must wait now, or null. */
export function deferReason(power: PowerState, metered: boolean | null, policy: SchedulePolicy): string | null {
  if (policy.deferOnMetered && metered === true) return 'Waiting for a network that is not metered (mobile data or a metered hotspot).';
  if (policy.minBatteryPercent > 0 && power.batteryPercent !== null && !power.charging && power.batteryPercent < policy.minBatteryPercent) {
    return `Waiting for power: the battery is at ${power.batteryPercent}% (below ${policy.minBatteryPercent}%) and not charging.`;
  }
  return null;
}

/** Next check after a success (random point in [interval, interval + window)) or after `failures` failures. */
export function nextCheckDelay(policy: SchedulePolicy, failures: number, random: () => number): number {
  if (failures > 0) {
    const backoff = Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** (failures - 1));
    // Jitter too, so machines that failed together (server down) do not come back together.
    return Math.round(backoff * (0.5 + random() / 2));
  }
  return Math.round(policy.intervalMs + random() * policy.windowMs);
}

const noBattery: PowerState = { batteryPercent: null, charging: false };

export interface Exclusive {
  /** Runs fn after every run asked for before it: a run that comes while another runs waits its turn, it is never refused. */
  run<T>(fn: () => Promise<T>): Promise<T>;
  busy(): boolean;
  whenIdle(): Promise<void>;
}

export function createExclusive(): Exclusive {
  let tail: Promise<unknown> = Promise.resolve();
  let waiting = 0;
  return {
    run<T>(fn: () => Promise<T>): Promise<T> {
      waiting++;
      const p = tail.then(fn).finally(() => waiting--);
      tail = p.catch(() => undefined);
      return p;
    },
    busy: () => waiting > 0,
    async whenIdle() {
      while (waiting > 0) await tail;
    },
  };
}

export type ScheduleTrigger = 'timer' | 'network-up' | 'request' | 'start';

export interface SchedulerDeps {
  clock: Clock;
  random?: () => number;
  policy: () => SchedulePolicy;
  probes: Probes;
  /** Does the check (and pull). Resolves true on success, false on failure. */
  run(trigger: ScheduleTrigger): Promise<boolean>;
  /** Called whenever nextCheckAt or the deferral changes. */
  onChange?(s: { nextCheckAt: number | null; deferred: string | null }): void;
  /** When the last check happened (persisted by the caller), to resume the rhythm after a restart. */
  lastCheckAt?: number | null;
}

export function createUpdateScheduler(deps: SchedulerDeps) {
  const random = deps.random ?? Math.random;
  let timer: unknown = null;
  let nextAt: number | null = null;
  let deferred: string | null = null;
  let failures = 0;
  let running: Promise<void> | null = null;
  let stopped = false;

  const changed = () => deps.onChange?.({ nextCheckAt: nextAt, deferred });

  function arm(delay: number) {
    if (stopped) return;
    if (timer !== null) deps.clock.clearTimeout(timer);
    nextAt = deps.clock.now() + delay;
    timer = deps.clock.setTimeout(() => {
      timer = null;
      void attempt('timer');
    }, delay);
    changed();
  }

  async function attempt(trigger: ScheduleTrigger, force = false): Promise<void> {
    if (running) return running;
    running = (async () => {
      const policy = deps.policy();
      // Whatever happens below, the timer is armed again: a schedule that stops is a silent failure.
      let delay = policy.deferRetryMs;
      try {
        if (!force) {
          const [power, metered] = await Promise.all([deps.probes.power().catch(() => noBattery), deps.probes.metered().catch(() => null)]);
          const why = deferReason(power, metered, policy);
          if (why) {
            deferred = why;
            return;
          }
        }
        deferred = null;
        // Through a promise, so that a run refused synchronously counts as a failure too.
        const ok = await Promise.resolve()
          .then(() => deps.run(trigger))
          .catch(() => false);
        failures = ok ? 0 : failures + 1;
        delay = nextCheckDelay(policy, failures, random);
      } finally {
        arm(delay);
      }
    })().finally(() => {
      running = null;
    });
    return running;
  }

  return {
    /** Arms the first check: soon if the last one is overdue, else where the rhythm says. */
    start() {
      const policy = deps.policy();
      const last = deps.lastCheckAt ?? null;
      const due = last === null ? random() * policy.windowMs : last + nextCheckDelay(policy, 0, random) - deps.clock.now();
      arm(Math.max(0, due));
    },
    /** The network came up: check now unless a check happened recently (within the window). */
    networkUp(lastCheckAt: number | null) {
      const policy = deps.policy();
      if (lastCheckAt !== null && deps.clock.now() - lastCheckAt < Math.max(policy.windowMs, 60_000) && failures === 0) return Promise.resolve();
      return attempt('network-up');
    },
    /** The person asked: no deferral (they see the reason and decide), no waiting. */
    requestNow: () => attempt('request', true),
    state: () => ({ nextCheckAt: nextAt, deferred, failures }),
    stop() {
      stopped = true;
      if (timer !== null) deps.clock.clearTimeout(timer);
      timer = null;
      nextAt = null;
    },
  };
}
export type UpdateScheduler = ReturnType<typeof createUpdateScheduler>;
