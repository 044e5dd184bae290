// The runtime's Schedule, the one timer every feature runs on (sync, image checks, fleet polling):
// every N at a random point inside a window (a fleet of laptops must not hit the server at once), on
// network-up and on request; deferred on metered networks and on battery below a threshold (unless
// charging), each with a visible reason; backing off after failures with jitter; exclusive runs that
// queue rather than throw. Pure logic plus a clock and probes that are injected: the tests drive it
// with a fake clock and fake probes, the agent with real timers, /sys/class/power_supply and nmcli.

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

/** Probes, read the way every feature reads them: a probe that fails says nothing (no battery, not known to be metered). */
export function probeDeferral(probes: Probes, policy: () => SchedulePolicy): (trigger: ScheduleTrigger) => Promise<string | null> {
  return async () => {
    const [power, metered] = await Promise.all([probes.power().catch(() => noBattery), probes.metered().catch(() => null)]);
    return deferReason(power, metered, policy());
  };
}

export interface ScheduleDeps {
  clock: Clock;
  random?: () => number;
  policy: () => SchedulePolicy;
  /** Why an automatic run must wait now, or null; a forced run never asks. */
  deferral?: (trigger: ScheduleTrigger) => Promise<string | null>;
  /** Does the work. Resolves true on success, false on a failure that backs off. */
  run(trigger: ScheduleTrigger): Promise<boolean>;
  /**
   * A trigger that comes while a run is under way: 'join' answers it with that run (a check asked
   * twice is one check); 'queue' runs once more afterwards (a request made during a sync is not
   * answered by a run that started before it).
   */
  whileRunning?: 'join' | 'queue';
  /** Called whenever the next run or the deferral changes. */
  onChange?(s: { nextAt: number | null; deferred: string | null }): void;
  /** Called once a run has ended and the next one is armed (nextAt null once stopped), before the run's promise resolves. */
  afterRun?(ok: boolean, nextAt: number | null): void;
}

export type Schedule = ReturnType<typeof createSchedule>;

/**
 * The one timer of a feature: arms the next run (after a success at the interval plus a random point
 * in the window, after failures with jittered exponential back-off), defers with a reason, and never
 * stops by itself: whatever a run does (throws, refuses synchronously), the next one is armed. After
 * stop() no timer is left and none is armed again, also by a run that was under way.
 */
export function createSchedule(deps: ScheduleDeps) {
  const random = deps.random ?? Math.random;
  let timer: unknown = null;
  let nextAt: number | null = null;
  let deferred: string | null = null;
  let failures = 0;
  let running: Promise<void> | null = null;
  let again: { trigger: ScheduleTrigger; force: boolean } | null = null;
  let started = false;
  let stopped = false;

  const changed = () => deps.onChange?.({ nextAt, deferred });

  function arm(delay: number) {
    // Before start() runs happen when asked, but no timer is left behind (a command never starts one).
    if (stopped || !started) return;
    if (timer !== null) deps.clock.clearTimeout(timer);
    nextAt = deps.clock.now() + delay;
    timer = deps.clock.setTimeout(() => {
      timer = null;
      void attempt('timer');
    }, delay);
    changed();
  }

  function attempt(trigger: ScheduleTrigger, force = false): Promise<void> {
    if (stopped) return Promise.resolve();
    if (running) {
      if (deps.whileRunning !== 'queue') return running;
      again = { trigger: again?.trigger ?? trigger, force: force || (again?.force ?? false) };
      return running.then(() => undefined);
    }
    running = (async () => {
      const policy = deps.policy();
      let delay = policy.deferRetryMs;
      let ran: boolean | null = null;
      try {
        const why = force || !deps.deferral ? null : await deps.deferral(trigger).catch(() => null);
        deferred = why;
        if (why) return;
        // Through a promise, so that a run refused synchronously counts as a failure too.
        ran = await Promise.resolve()
          .then(() => deps.run(trigger))
          .catch(() => false);
        failures = ran ? 0 : failures + 1;
        delay = nextCheckDelay(policy, failures, random);
      } finally {
        arm(delay);
        if (ran !== null) deps.afterRun?.(ran, stopped ? null : nextAt);
      }
    })().finally(() => {
      running = null;
      const next = again;
      again = null;
      if (next && !stopped) void attempt(next.trigger, next.force);
    });
    return running;
  }

  return {
    /** Arms the first run after delayMs. */
    start(delayMs: number) {
      started = true;
      stopped = false;
      arm(Math.max(0, delayMs));
    },
    /** Runs now unless deferred (force: the person asked, no deferral). */
    trigger: (trigger: ScheduleTrigger, force = false) => attempt(trigger, force),
    state: () => ({ nextAt, deferred, failures, running: running !== null }),
    /** Resolves once no run is under way (also one queued meanwhile). */
    async whenIdle() {
      while (running) await running;
    },
    stop() {
      stopped = true;
      again = null;
      if (timer !== null) deps.clock.clearTimeout(timer);
      timer = null;
      nextAt = null;
    },
  };
}

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

/** The image's checks on the Schedule: the rhythm resumes after a restart, a network-up checks unless one happened recently. */
export function createUpdateScheduler(deps: SchedulerDeps) {
  const random = deps.random ?? Math.random;
  const schedule = createSchedule({
    clock: deps.clock,
    random,
    policy: deps.policy,
    deferral: probeDeferral(deps.probes, deps.policy),
    run: deps.run,
    onChange: (s) => deps.onChange?.({ nextCheckAt: s.nextAt, deferred: s.deferred }),
  });
  return {
    /** Arms the first check: soon if the last one is overdue, else where the rhythm says. */
    start() {
      const policy = deps.policy();
      const last = deps.lastCheckAt ?? null;
      const due = last === null ? random() * policy.windowMs : last + nextCheckDelay(policy, 0, random) - deps.clock.now();
      schedule.start(due);
    },
    /** The network came up: check now unless a check happened recently (within the window). */
    networkUp(lastCheckAt: number | null) {
      const policy = deps.policy();
      if (lastCheckAt !== null && deps.clock.now() - lastCheckAt < Math.max(policy.windowMs, 60_000) && schedule.state().failures === 0) return Promise.resolve();
      return schedule.trigger('network-up');
    },
    /** The person asked: no deferral (they see the reason and decide), no waiting. */
    requestNow: () => schedule.trigger('request', true),
    state: () => {
      const s = schedule.state();
      return { nextCheckAt: s.nextAt, deferred: s.deferred, failures: s.failures };
    },
    stop: () => schedule.stop(),
  };
}
export type UpdateScheduler = ReturnType<typeof createUpdateScheduler>;

/**
 * A one-shot deadline on the clock (a countdown the person can watch and cancel): at most one is
 * armed; cancel() and stop() leave no timer, and a stopped countdown never arms again.
 */
export function createCountdown(clock: Clock) {
  let timer: unknown = null;
  let stopped = false;
  const cancel = () => {
    if (timer !== null) clock.clearTimeout(timer);
    timer = null;
  };
  return {
    /** Arms fn after ms (replacing an armed one); returns when it fires. */
    start(ms: number, fn: () => void): number {
      cancel();
      const at = clock.now() + ms;
      if (stopped) return at;
      timer = clock.setTimeout(() => {
        timer = null;
        fn();
      }, ms);
      return at;
    },
    cancel,
    armed: () => timer !== null,
    stop() {
      stopped = true;
      cancel();
    },
  };
}
