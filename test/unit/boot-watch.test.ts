// The lab's boot watch on real serial consoles recorded by the lab (session 5): where a boot is, and
// what the lab does when a reboot never began, a guest went silent, or ssh never answers.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootPhase, kernelCrashes, lastBoot, nextBootStep, type BootState } from '../lab/boot-watch';

const read = (name: string) => fs.readFileSync(path.join(__dirname, '../fixtures/consoles', name), 'utf8').replace(/\r/g, '');
// The default rsync-tree walk (a, b, c) of the lead's final check: a first boot, then (c)'s reboot.
const walk = read('rsync-tree-first-boot-and-reboot.txt');
const lines = walk.split('\n');
const at = (re: RegExp, from = 0) => lines.findIndex((l, i) => i >= from && re.test(l));
const firstLogin = at(/login: /);
const upTo = (end: number) => lines.slice(firstLogin + 1, end + 1).join('\n');

describe('bootPhase on a recorded reboot', () => {
  it('a first boot reads as booting until multi-user.target, then booted', () => {
    const multiUser = at(/Reached target .*multi-user\.target/);
    expect(multiUser).toBeGreaterThan(0);
    expect(bootPhase(lines.slice(0, multiUser).join('\n'), 'booting')).toBe('booting');
    expect(bootPhase(lines.slice(0, multiUser + 1).join('\n'), 'booting')).toBe('booted');
  });

  it('after the ask: nothing new is running (the console of session 5 CI hang), the first Stopping line is shutting down', () => {
    // session 5's CI: the console ended at the first boot's "laptop login:" with nothing after the ask.
    expect(bootPhase('', 'running')).toBe('running');
    // Kernel lines after the prompt are not a shutdown.
    expect(bootPhase('[   44.058651] powernow_k8: Power state transitions not supported\n', 'running')).toBe('running');
    // The first shutdown line shares the login prompt's line on the recorded console.
    expect(lines[firstLogin]).toMatch(/login: +\S*Stopping/);
    expect(bootPhase(lines[firstLogin]!, 'running')).toBe('shutting-down');
  });

  it('walks shutting-down, restarting, booting and booted through the recorded reboot', () => {
    const restart = at(/reboot: machine restart/);
    const kernel = at(/Linux version/, restart);
    const login = at(/login: /, kernel);
    const multiUser = at(/Reached target .*multi-user\.target/, kernel);
    expect(bootPhase(upTo(restart - 2), 'running')).toBe('shutting-down');
    expect(bootPhase(upTo(restart), 'running')).toBe('restarting');
    // The firmware's first lines after the warm reset.
    expect(lines[restart + 1]).toMatch(/BdsDxe|^\s*$/);
    expect(bootPhase(upTo(kernel), 'running')).toBe('booting');
    // The new boot's initramfs and systemd print "Stopping"/"Reached target" lines too: still booting.
    expect(bootPhase(upTo(multiUser - 1), 'running')).toBe('booting');
    expect(bootPhase(upTo(login), 'running')).toBe('booted');
    expect(lastBoot(upTo(login)).split('\n')[0]).toMatch(/BdsDxe/);
  });

  it('ostree (e) of session 5: silent after "reboot: machine restart" reads as restarting', () => {
    const text = read('ostree-silent-after-machine-restart.txt');
    // From the line after the login prompt the reboot was asked at.
    expect(bootPhase(text.split('\n').slice(1).join('\n'), 'running')).toBe('restarting');
  });

  it('a soft reboot: the new userspace comes up without a kernel', () => {
    const text = read('rsync-tree-soft-reboot.txt');
    const soft = text.split('\n');
    const switched = soft.findIndex((l) => /Reached target .*soft-reboot\.target/.test(l));
    expect(bootPhase(soft.slice(1, switched).join('\n'), 'running')).toBe('shutting-down');
    expect(bootPhase(soft.slice(1, switched + 1).join('\n'), 'running')).toBe('restarting');
    expect(bootPhase(soft.slice(1).join('\n'), 'running')).toBe('booted');
  });

  it("the lab's power-on and reset marks start a boot from any phase", () => {
    expect(bootPhase(`${upTo(at(/reboot: machine restart/))}\n==== power on 2026-12-02T04:30:00.000Z\n`, 'running')).toBe('booting');
    // A reset with no "reboot:" line (a panic's emergency restart): qemu exits and the lab starts it again.
    expect(bootPhase(`${upTo(at(/Reached target .*shutdown\.target/))}\n==== reset (the guest restarted): qemu starts again on the same disk 2026-12-02T04:30:00.000Z\n`, 'running')).toBe('booting');
  });
});

describe('nextBootStep', () => {
  const base: BootState = { phase: 'running', silentMs: 0, sinceAskMs: 0, sshAnswers: true, sameBoot: true, bootedForMs: 0, askedAgain: false, powerCycled: false };
  const step = (s: Partial<BootState>) => nextBootStep({ ...base, ...s });

  it('a reboot that never began (same boot, no shutdown line) is asked once more after a minute, then fails saying so', () => {
    expect(step({ sinceAskMs: 30_000 })).toEqual({ do: 'wait' });
    expect(step({ sinceAskMs: 61_000 })).toEqual({ do: 'ask-again' });
    const fail = step({ sinceAskMs: 61_000, askedAgain: true });
    expect(fail.do).toBe('fail');
    expect(fail.do === 'fail' && fail.why).toMatch(/never began, asked twice/);
  });

  it('a guest silent after the restart is power-cycled once (a watchdog), then fails', () => {
    expect(step({ phase: 'restarting', silentMs: 100_000, sinceAskMs: 120_000, sshAnswers: false, sameBoot: false })).toEqual({ do: 'wait' });
    const cycle = step({ phase: 'restarting', silentMs: 151_000, sinceAskMs: 170_000, sshAnswers: false, sameBoot: false });
    expect(cycle.do).toBe('power-cycle');
    expect(cycle.do === 'power-cycle' && cycle.why).toMatch(/silent for 151 s after the restart/);
    expect(step({ phase: 'restarting', silentMs: 151_000, sinceAskMs: 170_000, sshAnswers: false, sameBoot: false, powerCycled: true }).do).toBe('fail');
  });

  it('silent with ssh dead is wedged in any phase but booted; a running guest that answers ssh is not', () => {
    expect(step({ phase: 'running', silentMs: 181_000, sinceAskMs: 40_000, sshAnswers: false, sameBoot: false }).do).toBe('power-cycle');
    expect(step({ phase: 'booting', silentMs: 181_000, sinceAskMs: 200_000, sshAnswers: false, sameBoot: false }).do).toBe('power-cycle');
    expect(step({ phase: 'booting', silentMs: 181_000, sinceAskMs: 200_000, sshAnswers: true, sameBoot: false }).do).toBe('wait');
  });

  it('booted but ssh never answers: fails after four minutes, without a power-cycle', () => {
    expect(step({ phase: 'booted', silentMs: 300_000, sinceAskMs: 300_000, sshAnswers: false, sameBoot: false, bootedForMs: 200_000 })).toEqual({ do: 'wait' });
    const fail = step({ phase: 'booted', silentMs: 300_000, sinceAskMs: 400_000, sshAnswers: false, sameBoot: false, bootedForMs: 241_000 });
    expect(fail.do === 'fail' && fail.why).toMatch(/booted .* but ssh has not answered for 241 s/);
  });

  it('no boot waits longer than ten minutes', () => {
    expect(step({ phase: 'booting', silentMs: 5_000, sinceAskMs: 601_000, sshAnswers: false, sameBoot: false }).do).toBe('fail');
  });
});

describe('kernelCrashes', () => {
  it("finds a TCG Oops and the panic it ends in, once each, and nothing in a clean boot", () => {
    // The shape of session 9's crash (its console is gone with that machine): an int3 Oops in
    // sched_clock_cpu 4 s into the boot, then the panic that restarted the guest (panic=1).
    const crash = [
      '15:02:11.120 [    4.021337] int3: 0000 [#1] PREEMPT SMP NOPTI',
      '15:02:11.121 [    4.021337] CPU: 1 PID: 0 Comm: swapper/1 Not tainted 6.12.57+deb13-amd64 #1  Debian 6.12.57-1',
      '15:02:11.122 [    4.021337] RIP: 0010:sched_clock_cpu+0x10/0x1a0',
      '15:02:11.130 [    4.080000] Kernel panic - not syncing: Fatal exception in interrupt',
      '15:02:11.131 [    4.080000] Kernel panic - not syncing: Fatal exception in interrupt',
    ].join('\n');
    expect(kernelCrashes(crash)).toEqual(['int3: 0000 [#1] PREEMPT SMP NOPTI', 'Kernel panic - not syncing: Fatal exception in interrupt']);
    expect(kernelCrashes(walk)).toEqual([]);
    // Session 10's (e): a virtual CPU starved by a loaded host warns, and the boot goes on.
    expect(kernelCrashes('00:01:12.001 [   31.504112] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [modprobe:441]')).toEqual([]);
  });
});
