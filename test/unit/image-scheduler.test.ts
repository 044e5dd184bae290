// The update scheduler driven by a fake clock and fake power/network probes (no battery or metered
// modem exists here): rhythm with a random offset, network-up, deferral with a reason, back-off.
import { describe, expect, it } from 'vitest';
import type { PowerState } from '../../src-main/core/runtime/probes';
import { createUpdateScheduler, deferReason, nextCheckDelay, type SchedulePolicy } from '../../src-main/core/runtime/schedule';
import { createFakeClock } from '../fixtures/fake-clock';

const H = 3600_000;
const policy: SchedulePolicy = { intervalMs: 6 * H, windowMs: 1 * H, deferOnMetered: true, minBatteryPercent: 30, backoffBaseMs: 5 * 60_000, backoffMaxMs: 6 * H, deferRetryMs: 15 * 60_000 };

function setup(opts: { random?: () => number; results?: boolean[] } = {}) {
  const clock = createFakeClock();
  const fakePower: PowerState = { batteryPercent: null, charging: false };
  const fakeNetwork = { metered: false as boolean | null };
  const runs: { at: number; trigger: string }[] = [];
  const results = [...(opts.results ?? [])];
  const s = createUpdateScheduler({
    clock,
    random: opts.random ?? (() => 0.5),
    policy: () => policy,
    probes: { power: async () => ({ ...fakePower }), metered: async () => fakeNetwork.metered },
    run: async (trigger) => {
      runs.push({ at: clock.now(), trigger });
      return results.length ? results.shift()! : true;
    },
  });
  return { clock, fakePower, fakeNetwork, runs, s, t0: clock.now() };
}

describe('update scheduler', () => {
  it('checks every 6 h at a random offset inside the window, different per machine', async () => {
    const a = setup({ random: () => 0.1 });
    const b = setup({ random: () => 0.9 });
    for (const m of [a, b]) {
      m.s.start();
      await m.clock.advance(20 * H);
    }
    // First check inside the first window; then every 6 h plus the machine's own offset.
    expect(a.runs.map((r) => (r.at - a.t0) / H)).toEqual([0.1, 6.2, 12.3, 18.4]);
    expect(b.runs.map((r) => (r.at - b.t0) / H)).toEqual([0.9, 7.8, 14.7]);
  });

  it('resumes the rhythm after a restart from the last check time', async () => {
    const clock = createFakeClock();
    const runs: number[] = [];
    const s = createUpdateScheduler({
      clock,
      random: () => 0,
      policy: () => policy,
      probes: { power: async () => ({ batteryPercent: null, charging: false }), metered: async () => false },
      run: async () => (runs.push(clock.now()), true),
      lastCheckAt: clock.now() - 2 * H,
    });
    s.start();
    expect(s.state().nextCheckAt).toBe(clock.now() + 4 * H);
    await clock.advance(4 * H);
    expect(runs).toHaveLength(1);
  });

  it('defers on a metered network with a reason, and checks once the network is not metered', async () => {
    const m = setup();
    m.fakeNetwork.metered = true;
    m.s.start();
    await m.clock.advance(1 * H);
    expect(m.runs).toHaveLength(0);
    expect(m.s.state().deferred).toMatch(/not metered/);
    expect(m.s.state().nextCheckAt).toBeLessThanOrEqual(m.clock.now() + policy.deferRetryMs);
    m.fakeNetwork.metered = false;
    await m.clock.advance(policy.deferRetryMs);
    expect(m.runs).toHaveLength(1);
    expect(m.s.state().deferred).toBeNull();
  });

  it('defers on low battery unless charging', () => {
    expect(deferReason({ batteryPercent: 12, charging: false }, false, policy)).toBe('Waiting for power: the battery is at 12% (below 30%) and not charging.');
    expect(deferReason({ batteryPercent: 12, charging: true }, false, policy)).toBeNull();
    expect(deferReason({ batteryPercent: null, charging: false }, false, policy)).toBeNull();
    expect(deferReason({ batteryPercent: 80, charging: false }, null, policy)).toBeNull();
  });

  it('a request from the person runs at once, even when deferred', async () => {
    const m = setup();
    m.fakePower.batteryPercent = 5;
    await m.s.requestNow();
    expect(m.runs).toEqual([{ at: m.t0, trigger: 'request' }]);
  });

  it('network-up checks when the last check is old, not right after one', async () => {
    const m = setup();
    await m.s.networkUp(m.t0 - 3 * H);
    expect(m.runs.map((r) => r.trigger)).toEqual(['network-up']);
    await m.s.networkUp(m.clock.now());
    expect(m.runs).toHaveLength(1);
  });

  it('backs off after failures, doubling up to the cap, and returns to the rhythm after a success', async () => {
    const m = setup({ random: () => 1, results: [false, false, false, true] });
    m.s.start(); // a scheduler never started arms no timer (a command that only checks leaves none behind)
    await m.s.requestNow();
    const gaps: number[] = [];
    let last = m.clock.now();
    for (let i = 0; i < 3; i++) {
      await m.clock.advance(m.s.state().nextCheckAt! - m.clock.now());
      gaps.push((m.clock.now() - last) / 60_000);
      last = m.clock.now();
    }
    expect(gaps).toEqual([5, 10, 20]);
    expect(m.s.state().failures).toBe(0);
    expect(m.s.state().nextCheckAt! - m.clock.now()).toBe(7 * H);
  });

  it('a scheduler that was never started runs what is asked but leaves no timer; a stopped one runs nothing more', async () => {
    const m = setup({ results: [false] });
    await m.s.requestNow();
    expect(m.runs).toHaveLength(1);
    expect(m.clock.pending()).toBe(0);
    m.s.start();
    expect(m.clock.pending()).toBe(1);
    m.s.stop();
    expect(m.clock.pending()).toBe(0);
    await m.s.requestNow();
    await m.clock.advance(48 * H);
    expect(m.runs).toHaveLength(1);
  });

  it('the back-off never exceeds its cap', () => {
    expect(nextCheckDelay(policy, 30, () => 1)).toBe(6 * H);
  });

  it('re-arms even when the run throws before it returns a promise (an exclusive run refused at once)', async () => {
    const clock = createFakeClock();
    const s = createUpdateScheduler({
      clock,
      random: () => 0.5,
      policy: () => policy,
      probes: { power: async () => ({ batteryPercent: null, charging: false }), metered: async () => false },
      run: () => {
        throw new Error('refused synchronously');
      },
    });
    s.start();
    await clock.advance(30 * 60_000);
    expect(s.state().failures).toBe(1);
    expect(clock.pending()).toBe(1);
    // Backing off (5 min, jittered to 3.75 with random 0.5), then again, longer.
    expect(s.state().nextCheckAt).toBe(clock.now() + 3.75 * 60_000);
    await clock.advance(3.75 * 60_000);
    expect(s.state()).toMatchObject({ failures: 2, nextCheckAt: clock.now() + 7.5 * 60_000 });
    s.stop();
  });
});
