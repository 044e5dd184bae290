// Driving a booted laptop as its person and its admin would, whatever the image backend: `tabula
// status` as the logged-in user, a reboot that resolves when the laptop answers again, waiting for
// the agent (the user's systemd service) to answer.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from './lab';
import type { Vm } from './vm';

const repo = path.resolve(__dirname, '../..');

/**
 * (b)'s home as another laptop left it on the NAS: a real `tabula sync` of a report and a picture into
 * `nasHome` (with the storage marker). Returns what {@link Laptop.restoredHome} checks against.
 */
export function seedNasHome(work: string, nasHome: string): { holidaySha: string } {
  const oldHome = path.join(work, 'old-laptop-home');
  fs.mkdirSync(path.join(oldHome, 'Documents'), { recursive: true });
  fs.mkdirSync(path.join(oldHome, 'Pictures'), { recursive: true });
  fs.writeFileSync(path.join(oldHome, 'Documents/report.txt'), 'Quarterly numbers, final.\n');
  const holiday = crypto.randomBytes(300_000);
  fs.writeFileSync(path.join(oldHome, 'Pictures/holiday.jpg'), holiday);
  execFileSync(process.execPath, [path.join(repo, 'bin/tabula.js'), 'sync', '--home', oldHome, '--storage', nasHome], { env: { ...process.env, HOME: path.join(work, 'old-laptop-user'), XDG_RUNTIME_DIR: path.join(work, 'old-laptop-run') }, stdio: 'ignore' });
  return { holidaySha: crypto.createHash('sha256').update(holiday).digest('hex') };
}

export interface AgentStatusJson {
  image: { version: string };
  backup: { state: string; reason: string; lastSuccessAt: string | null; queuedChanges: number };
  imageUpdate: {
    state: string;
    reason: string;
    booted: { version: string } | null;
    staged: { version: string } | null;
    rollback: { version: string } | null;
    lastPullBytes: number | null;
  };
  /** Settings problems and the agent's own (its change journal not tracking the home, …). */
  problems?: { message: string }[];
}

export interface Laptop {
  vm: Vm;
  user: string;
  /** `tabula status --json` as the user: what a person would run. */
  status(): Promise<AgentStatusJson>;
  /**
   * The same answer, asked of the agent's socket with curl where the image has it: for waiting
   * loops. Under TCG every `tabula` command costs the guest ~10 s of CPU (Node loading its bundle),
   * so polling with it every 2 s starved the laptop it was waiting for.
   */
  peek(): Promise<AgentStatusJson>;
  bootId(): Promise<string>;
  /** `systemctl <verb>` (reboot, soft-reboot) as root; resolves with the ms until the laptop answers ssh again. */
  reboot(verb?: 'reboot' | 'soft-reboot'): Promise<number>;
  /** Waits until `tabula status` answers as the user; throws with the service's state and journal. */
  agentUp(timeoutMs?: number): Promise<AgentStatusJson>;
  /**
   * (c) after the reboot, the NAS still down: the backup asked for before it is still waiting. Right
   * after the agent starts, a run (that backup trying the NAS) says 'running' and has not counted the
   * changes yet: it is waited out first, then the status must say offline or changes queued.
   */
  stillQueued(first: AgentStatusJson): Promise<void>;
  /**
   * (b): waits for the first sync to end and checks the home holds what {@link seedNasHome} left;
   * resolves with the status then and when (host clock, ms) the first sync was seen done.
   */
  restoredHome(seeded: { holidaySha: string }): Promise<{ status: AgentStatusJson; backedUpAt: number }>;
  /**
   * A broken image's way back ((f), either backend): `tabula image pull` stages `broken`, a reboot
   * tries it, and the laptop comes back on `previous` by itself, its status saying "Version <broken>
   * failed to start; you're back on <previous>"; a second pull stages nothing. Resolves with that
   * status and the ms from the reboot's ask to ssh after the fallback.
   */
  brokenImageFallsBack(broken: string, previous: string): Promise<{ status: AgentStatusJson; rebootMs: number }>;
}

// `status.get` on the agent's socket (its reply is `{ok, result}`); `tabula status --json` where curl is missing.
const PEEK = `sock="\${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/tabula/agent.sock"; if command -v curl >/dev/null; then curl -sS --fail-with-body --max-time 120 --unix-socket "$sock" -X POST -H 'content-type: application/json' -d '{}' http://localhost/api/call/status.get; else tabula status --json; fi`;

export function createLaptop(vm: Vm, user: string): Laptop {
  const laptop: Laptop = {
    vm,
    user,
    status: async () => JSON.parse(await vm.run(user, 'tabula status --json')) as AgentStatusJson,
    async peek() {
      const out = await vm.run(user, PEEK);
      const reply = JSON.parse(out) as { ok: true; result: AgentStatusJson } | { ok: false; error: { message: string } } | AgentStatusJson;
      if ('ok' in reply) {
        if (!reply.ok) throw new Error(reply.error.message);
        return reply.result;
      }
      return reply;
    },
    bootId: async () => (await vm.run('root', 'cat /proc/sys/kernel/random/boot_id')).trim(),
    async reboot(verb = 'reboot') {
      // A soft reboot keeps the kernel and so its boot_id: the new userspace is told apart by systemd's
      // own count of soft reboots.
      const probe = verb === 'reboot' ? 'cat /proc/sys/kernel/random/boot_id' : 'systemctl show -P SoftRebootsCount';
      const before = (await vm.run('root', probe)).trim();
      const since = vm.consoleMark();
      const t0 = Date.now();
      // --no-block: systemctl returns once systemd has the job, before the shutdown takes sshd away.
      // Whatever this ssh says (it may be cut by the shutdown, or fail on a busy guest before
      // running anything), the console tells whether the reboot began: waitForBoot asks again once
      // if it did not.
      const ask = async () => void (await vm.ssh('root', `systemctl --no-block ${verb}`, { timeoutMs: 120_000 }));
      await ask();
      const ms = await vm.waitForBoot({ what: `"systemctl ${verb}"`, since, t0, probe, before, askAgain: ask });
      await vm.ssh('root', 'systemctl is-system-running --wait', { timeoutMs: 300_000 });
      return ms;
    },
    async agentUp(timeoutMs = 900_000) {
      try {
        await waitFor(() => laptop.peek(), timeoutMs, 'the agent never answered on its socket');
        return await laptop.status();
      } catch (err) {
        const diag = await vm.ssh(user, 'systemctl --user status tabula-agent --no-pager 2>&1 | head -12; journalctl --user -u tabula-agent -n 20 --no-pager 2>&1', { timeoutMs: 60_000 });
        throw new Error(`${(err as Error).message}\nThe agent's service:\n${diag.stdout}${diag.stderr}`);
      }
    },
    async restoredHome(seeded) {
      const s = await waitFor(async () => {
        const st = await laptop.peek();
        return st.backup.lastSuccessAt ? st : null;
      }, 600_000, 'the first sync never finished');
      const backedUpAt = Date.now();
      const report = await vm.run(user, 'cat ~/Documents/report.txt');
      const holiday = (await vm.run(user, 'sha256sum ~/Pictures/holiday.jpg')).split(' ')[0];
      if (report !== 'Quarterly numbers, final.\n' || holiday !== seeded.holidaySha) throw new Error(`the home was not restored: report.txt=${JSON.stringify(report)}, holiday.jpg sha256 ${holiday}`);
      return { status: s, backedUpAt };
    },
    async stillQueued(first) {
      const st = first.backup.state !== 'running' ? first : await waitFor(async () => {
        const s = await laptop.peek();
        return s.backup.state === 'running' ? null : s;
      }, 300_000, 'the backup that ran after the reboot never ended with the NAS down');
      if (st.backup.queuedChanges < 1 && st.backup.state !== 'offline') throw new Error(`after the reboot the queued backup is gone: ${st.backup.state}, ${st.backup.reason}`);
    },
    async brokenImageFallsBack(broken, previous) {
      const pull = async (timeoutMs: number) => JSON.parse(await vm.run(user, 'tabula image pull --json', { timeoutMs })) as AgentStatusJson['imageUpdate'];
      const s = await pull(900_000);
      if (s.staged?.version !== broken) throw new Error(`image ${broken} was not staged: ${s.state}, ${s.reason}`);
      const t0 = Date.now();
      await laptop.reboot();
      const rebootMs = Date.now() - t0;
      await laptop.agentUp();
      const said = `Version ${broken} failed to start; you're back on ${previous}`;
      const status = await waitFor(async () => {
        const st = await laptop.peek();
        return st.imageUpdate.reason.includes(said) ? st : null;
      }, 600_000, `the status never said "${said}"`);
      if (status.image.version !== previous) throw new Error(`running ${status.image.version}, expected ${previous}`);
      const again = await pull(300_000);
      if (again.staged) throw new Error(`image ${again.staged.version} was staged again after it failed to start`);
      return { status, rebootMs };
    },
  };
  return laptop;
}
