// Reading a laptop's serial console while it boots or reboots, so that no boot can hang silently:
// where the boot is (the console says it), and what the lab does next. Pure logic, tested on real
// recorded consoles (test/unit/boot-watch.test.ts); vm.ts runs it (waitForBoot).

/** Where a boot is, read from the console output written since it was asked for. */
export type BootPhase =
  /** The old system, no shutdown line yet. */
  | 'running'
  /** systemd stopping units. */
  | 'shutting-down'
  /** The kernel asked the machine to restart (or systemd switched to a soft reboot's new userspace). */
  | 'restarting'
  /** Firmware, kernel or systemd starting up. */
  | 'booting'
  /** The login prompt (or multi-user/graphical target) of the new boot. */
  | 'booted';

// systemd prints unit status on the console only while booting or shutting down, so a "Stopping …"
// line after the ask means the shutdown began.
const SHUTDOWN = /(^|\s)(Stopping|Stopped|Unmounting|Unmounted) |Reached target .*(shutdown|final|reboot|soft-reboot)\.target|systemd-shutdown\[/;
const RESTART = /reboot: (Restarting system|machine restart|Power down)|Reached target .*soft-reboot\.target/;
// The lab's own marks in the console: a power on, or qemu started again after the guest's reset (vm.ts).
const POWER_ON = /^==== (power on|reset)/;
/** The guest's sshd started (its "Started ssh.service" status line). */
export const SSHD_STARTED = /Started .*ssh\.service/;
const UP = /\blogin: |Reached target .*(multi-user|graphical)\.target/;

/**
 * The phase after `text` (console output since the ask), starting from `from`: `running` after
 * asking a reboot of a running system, `booting` after a power on.
 */
export function bootPhase(text: string, from: 'running' | 'booting'): BootPhase {
  let phase: BootPhase = from;
  for (const line of text.split('\n')) {
    if (POWER_ON.test(line)) phase = 'booting';
    else if (RESTART.test(line)) {
      if (phase === 'running' || phase === 'shutting-down') phase = 'restarting';
    }
    else if (SHUTDOWN.test(line) && phase === 'running') phase = 'shutting-down';
    else if (phase === 'restarting' && line.trim()) phase = 'booting';
    // A login prompt can share its line with the first shutdown line ("laptop login:   Stopping …"): checked above.
    else if (UP.test(line) && phase === 'booting') phase = 'booted';
  }
  return phase;
}

export interface BootState {
  phase: BootPhase;
  /** ms since the console last wrote anything. */
  silentMs: number;
  /** ms since the (last) ask, or since the power on. */
  sinceAskMs: number;
  /** The last ssh probe answered (with any boot id). */
  sshAnswers: boolean;
  /** The last probe answered with the boot id from before the ask (the reboot has not happened). */
  sameBoot: boolean;
  /** ms since the phase became `booted` (0 before). */
  bootedForMs: number;
  /** This boot was asked for twice already. */
  askedAgain: boolean;
  /** This boot had its power-cycle already. */
  powerCycled: boolean;
}

export type BootStep =
  | { do: 'wait' }
  | { do: 'ask-again' }
  | { do: 'power-cycle'; why: string }
  | { do: 'fail'; why: string };

// Measured here under TCG: a reboot's shutdown writes its first line within a second or two of
// the ask; the firmware after a warm reset writes within ~20 s; no boot pauses the console for
// more than ~30 s. So: a minute without a shutdown line is a reboot that never began, and ~2-3
// minutes of silence is a wedged guest or firmware (ostree (e) in session 5: 20+ min silent after
// "reboot: machine restart" under OVMF/TCG).
export const NOT_BEGUN_MS = 60_000;
export const SILENT_AFTER_RESTART_MS = 150_000;
export const SILENT_SSH_DEAD_MS = 180_000;
/** A booted guest whose sshd never answers is not helped by waiting longer. */
export const BOOTED_NO_SSH_MS = 240_000;
/** No boot waits longer (a first boot takes ~70-120 s here, a reboot ~100-160 s). */
export const BOOT_LIMIT_MS = 600_000;

/** What to do next while waiting for a boot; a real laptop's watchdog would power-cycle where this does. */
export function nextBootStep(s: BootState): BootStep {
  const silent = `${Math.round(s.silentMs / 1000)} s`;
  if (s.phase === 'running' && s.sameBoot && s.sinceAskMs >= NOT_BEGUN_MS) {
    return s.askedAgain ? { do: 'fail', why: `it never began, asked twice: no shutdown on the console and the same boot after ${Math.round(s.sinceAskMs / 1000)} s` } : { do: 'ask-again' };
  }
  const wedged =
    s.phase === 'restarting' && s.silentMs >= SILENT_AFTER_RESTART_MS
      ? `the console has been silent for ${silent} after the restart`
      : s.phase !== 'booted' && !s.sshAnswers && s.silentMs >= SILENT_SSH_DEAD_MS
        ? `the console has been silent for ${silent} (${s.phase}) and ssh does not answer`
        : null;
  if (wedged) return s.powerCycled ? { do: 'fail', why: `${wedged}, after a power-cycle too` } : { do: 'power-cycle', why: wedged };
  if (s.phase === 'booted' && !s.sshAnswers && s.bootedForMs >= BOOTED_NO_SSH_MS) return { do: 'fail', why: `it booted (the console shows the login prompt) but ssh has not answered for ${Math.round(s.bootedForMs / 1000)} s since` };
  if (s.sinceAskMs >= BOOT_LIMIT_MS) return { do: 'fail', why: `not back within ${BOOT_LIMIT_MS / 1000} s (${s.phase}, the console silent for ${silent})` };
  return { do: 'wait' };
}

/** The console from the last boot's start (power on, firmware after a restart, or the kernel) on. */
export function lastBoot(text: string): string {
  const lines = text.split('\n');
  for (let i = lines.length - 1; i > 0; i--) if (POWER_ON.test(lines[i]!) || RESTART.test(lines[i - 1]!)) return lines.slice(i).join('\n');
  return text;
}

// A guest kernel's crash on the console: an Oops (under TCG with two virtual CPUs, session 9 saw
// "int3: 0000 [#1] PREEMPT SMP NOPTI" in sched_clock_cpu, qemu's and not the image's), a BUG, or a
// panic. Not "BUG: soft lockup": a warning that a virtual CPU got no host time for 20 s (a loaded
// host), after which the guest goes on (session 10's (e), load ~9).
const CRASH = /\b(Oops|int3): [0-9a-f]{4} \[#\d+\]|\bBUG: (?!soft lockup)|general protection fault|Kernel panic - not syncing: .*/;

/** The crash lines in a console text (each once, in order, without the time stamps), for the scenario's line. */
export function kernelCrashes(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = CRASH.exec(line);
    if (!m) continue;
    const said = line.slice(m.index).trim().slice(0, 120);
    if (!out.includes(said)) out.push(said);
  }
  return out;
}
