// A virtual laptop: qemu with OVMF, booting its GPT disk through systemd-boot; KVM only where a
// probe boot proved it works (on this kind of machine /dev/kvm opens but a guest hangs at its first
// kernel output, see ENV-FACTS), TCG otherwise. Networking is qemu's user mode with restrict=on: the guest
// reaches nothing but the guestfwd rules (each a connection to a port on the host's 127.0.0.1),
// and the lab reaches the guest's sshd through one hostfwd bound to 127.0.0.1.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../fixtures/free-port';
import { bootPhase, kernelCrashes, lastBoot, nextBootStep, SSHD_STARTED, type BootPhase } from './boot-watch';

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
const GUESTFWD = path.join(__dirname, 'guestfwd.cjs');
// Generous: under TCG on 2 busy shared cores one `tabula status` (Node starting a 1 MB bundle) took
// 90 s of guest time in a measured run; on an idle machine it is a few seconds.
const DEFAULT_SSH_TIMEOUT_MS = 600_000;

export interface GuestForward {
  /** Address and port the guest connects to (10.0.2.x inside the user-mode network). */
  guest: string;
  guestPort: number;
  /** Port on the host's 127.0.0.1. */
  hostPort: number;
}

/** How qemu runs the guest: `kvm` only after probeAccel() saw a guest kernel reach its initramfs. */
export interface Accel {
  kind: 'kvm' | 'tcg';
  /** One line for the lab's output: which, and why. */
  why: string;
  /** Virtual CPUs per laptop (default 2; 1 when the laptops walk side by side, TABULA_LAB_SIDE_BY_SIDE). */
  cpus?: number;
}

export interface VmOptions {
  dir: string;
  accel: Accel;
  disk: string;
  sshKey: string;
  forwards: GuestForward[];
  memoryMiB?: number;
  /** One `lab:` line (a power-cycle, a reboot asked again); console.log when absent. */
  log?: (s: string) => void;
}

export interface SshResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Vm {
  sshPort: number;
  consoleLog: string;
  /** Starts qemu (power on). */
  start(): Promise<void>;
  /** Waits (at most ~10 min) until the guest's sshd answers after a power on; returns the ms from start(). */
  waitForSsh(): Promise<number>;
  /**
   * Waits until the guest answers ssh with a boot other than `ask.before`, watching the console
   * (boot-watch.ts): a reboot that never began is asked once more, a wedged guest or firmware is
   * power-cycled once, a guest that booted but never answers ssh fails with the last ssh error.
   * Returns the ms from the ask to ssh answering.
   */
  waitForBoot(ask: BootAsk): Promise<number>;
  /** Where the console is now, for BootAsk.since. */
  consoleMark(): number;
  /** What happened to the machine since the last call (power-cycles, reboots asked twice, kernel crashes), for the scenario's line. */
  takeNotes(): string[];
  /** Adds a note of the scenario's own (a boot whose bless failed) to the next line. */
  note(s: string): void;
  ssh(user: string, command: string, opts?: { timeoutMs?: number; input?: string; signal?: AbortSignal }): Promise<SshResult>;
  /** ssh that must succeed: throws with the command's output otherwise. */
  run(user: string, command: string, opts?: { timeoutMs?: number; input?: string }): Promise<string>;
  consoleTail(lines?: number): string;
  /** Power off (kills qemu). */
  stop(): Promise<void>;
  running(): boolean;
}

export interface BootAsk {
  /** For the messages: '"systemctl reboot"'. */
  what: string;
  /** consoleMark() before the ask. */
  since: number;
  /** Date.now() of the ask. */
  t0: number;
  /** A shell command printing the boot's mark (its boot id), and that mark before the ask. */
  probe: string;
  before: string;
  /** Asks again (once) when the console shows the reboot never began. */
  askAgain(): Promise<void>;
}

export async function createVm(opts: VmOptions): Promise<Vm> {
  const sshPort = await freePort();
  const consoleLog = path.join(opts.dir, 'console.log');
  const vars = path.join(opts.dir, 'OVMF_VARS.fd');
  if (!fs.existsSync(vars)) fs.copyFileSync(OVMF_VARS, vars);
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const killOnExit = () => child?.kill('SIGKILL');
  const log = opts.log ?? ((line: string) => console.log(`  lab: ${line}`));
  let notes: string[] = [];

  // The serial console, read from qemu's stdout: kept whole in memory for the boot watch and
  // appended to console.log with the host's time at each line (qemu's own `-serial file:`
  // truncated the file at every start, losing the earlier boots and the power-on marks).
  const consoleFd = fs.openSync(consoleLog, 'a');
  let consoleText = '';
  let lastOutput = Date.now();
  let atLineStart = true;
  let powerOnMark = 0;
  let powerOnAt = 0;
  const writeConsole = (chunk: string) => {
    lastOutput = Date.now();
    const text = chunk.replace(/\r/g, '');
    consoleText += text;
    const stamp = () => `${new Date().toISOString().slice(11, 23)} `;
    let out = '';
    for (const ch of text.split(/(?<=\n)/)) {
      out += (atLineStart ? stamp() : '') + ch;
      atLineStart = ch.endsWith('\n');
    }
    fs.writeSync(consoleFd, out);
  };
  const mark = (what: string) => {
    if (!atLineStart) writeConsole('\n');
    writeConsole(`==== ${what} ${new Date().toISOString()}\n`);
  };

  const fwd = opts.forwards.map((f) => `,guestfwd=tcp:${f.guest}:${f.guestPort}-cmd:${process.execPath} ${GUESTFWD} 127.0.0.1 ${f.hostPort}`).join('');
  const args = [
    '-machine', 'q35',
    // No default devices: a laptop here has its virtio disk and network and a serial console, and
    // nothing else to probe at every boot. q35's defaults added a VGA card (bochs-drm and a console
    // switch), a DVD drive on the SATA controller (its ATAPI probe and the sr/cdrom drivers, ~4 s of
    // each boot under TCG) and a parallel port (parport_pc, ppdev, lp).
    '-nodefaults',
    ...accelArgs(opts.accel),
    '-smp', String(opts.accel.cpus ?? 2),
    '-m', String(opts.memoryMiB ?? 1536),
    '-drive', `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`,
    '-drive', `if=pflash,format=raw,file=${vars}`,
    // The firmware boots the disk and nothing else: it is the only boot device (bootindex), and the
    // network card has no option ROM (romfile=), so OVMF neither loads iPXE nor offers network boot.
    '-drive', `file=${opts.disk},format=raw,if=none,id=disk,cache=unsafe`,
    '-device', 'virtio-blk-pci,drive=disk,bootindex=0',
    '-netdev', `user,id=net,restrict=on,hostfwd=tcp:127.0.0.1:${sshPort}-:22${fwd}`,
    '-device', 'virtio-net-pci,netdev=net,romfile=',
    '-display', 'none',
    '-serial', 'stdio',
    '-monitor', 'none',
    '-no-reboot',
  ];

  // One ssh connection per user and boot (OpenSSH's ControlMaster): under TCG every fresh login
  // (key exchange, PAM, a logind session) costs the guest seconds of processor, and the lab polls
  // every 2 s. A reboot, a soft reboot or qemu's end closes the connection and its master exits;
  // each boot (a power on, a reset, a reboot asked) still gets a new socket, so no command ever
  // waits on a master of the boot before, and a master left idle exits after ControlPersist.
  let muxDir = '';
  let muxBoot = 0;
  const newMuxBoot = () => void muxBoot++;
  const muxPath = () => {
    if (!muxDir) muxDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-lab-ssh-'));
    return path.join(muxDir, `${muxBoot}-%r`);
  };
  const sshArgs = (user: string) => [
    '-o', 'ControlMaster=auto',
    '-o', `ControlPath=${muxPath()}`,
    '-o', 'ControlPersist=30',
    '-p', String(sshPort),
    '-i', opts.sshKey,
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    // The guest is our own VM on loopback, and its host key is made on its first boot.
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'LogLevel=ERROR',
    // Under TCG on a loaded host the guest's sshd took over 10 s to send its banner.
    '-o', 'ConnectTimeout=90',
    '-F', '/dev/null',
    `${user}@127.0.0.1`,
  ];

  // A guest's reset ends qemu (-no-reboot) and qemu starts again on the same disk and firmware
  // variables: a cold reset. OVMF's warm reset under TCG took ~85 s to reach the kernel here (10 s
  // from a power on), and once hung for 20+ min after "reboot: machine restart" (ostree (e), session 5).
  const spawnQemu = async () => {
    // guestfwd.cjs (run by qemu for each guest connection) logs each connection there.
    newMuxBoot();
    const c = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TABULA_LAB_GUESTFWD_LOG: path.join(opts.dir, 'guestfwd.log') } });
    let stderr = '';
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    c.stdout!.setEncoding('utf8').on('data', writeConsole);
    child = c;
    process.on('exit', killOnExit);
    exited = new Promise((resolve) =>
      c.once('exit', (code, signal) => {
        if (child === c) child = null;
        process.off('exit', killOnExit);
        if (code) mark(`qemu exited ${code ?? signal}: ${stderr}`);
        // Exit 0 is the guest's own reset or power-off (the lab stops qemu with SIGKILL).
        else if (code === 0 && !/reboot: Power down\s*$/.test(consoleText.slice(-300))) {
          mark('reset (the guest restarted): qemu starts again on the same disk');
          void spawnQemu().catch((err: Error) => mark(`qemu did not start again: ${err.message}`));
        }
        resolve();
      }),
    );
    await new Promise<void>((resolve, reject) => {
      c.once('spawn', resolve);
      c.once('error', reject);
    });
  };

  const vm: Vm = {
    sshPort,
    consoleLog,
    async start() {
      if (child) return;
      powerOnMark = consoleText.length;
      powerOnAt = Date.now();
      mark('power on');
      await spawnQemu();
    },
    async waitForSsh() {
      const t0 = powerOnAt;
      await vm.waitForBoot({ what: 'the power on', since: powerOnMark, t0, probe: 'cat /proc/sys/kernel/random/boot_id', before: '', askAgain: async () => undefined });
      // Up means booted to the end, as the figures before measured it.
      await vm.ssh('root', 'systemctl is-system-running --wait', { timeoutMs: 300_000 });
      return Date.now() - t0;
    },
    async waitForBoot(ask) {
      let since = ask.since;
      let from: 'running' | 'booting' = ask.before ? 'running' : 'booting';
      let t0 = ask.t0;
      let askedAgain = false;
      let powerCycled = false;
      let bootedAt = 0;
      let lastSsh = '';
      let last = { answers: false, same: false };
      newMuxBoot();
      for (;;) {
        if (!child) throw new Error(`the virtual laptop powered off during ${ask.what}.\n${vm.consoleTail()}`);
        // An ssh begun before the guest's network was up waits for the user-mode network's next SYN
        // retransmission (3, 9, 21 s…): it lost ~24 s a boot here. Once the console says sshd
        // started, a fresh connection gets through at once.
        const probeFrom = consoleText.length;
        const fresh = new AbortController();
        const watch = setInterval(() => SSHD_STARTED.test(consoleText.slice(probeFrom)) && fresh.abort(), 500);
        const r = await vm.ssh('root', ask.probe, { timeoutMs: 20_000, signal: fresh.signal });
        clearInterval(watch);
        if (fresh.signal.aborted) continue;
        const now = r.stdout.trim();
        // After a power-cycle any answer is the new boot (a soft reboot's count starts again at 0).
        if (r.code === 0 && now && (now !== ask.before || powerCycled)) {
          // A crash on the way (a TCG Oops, a broken image's panic): said in the scenario's line.
          const crashes = kernelCrashes(consoleText.slice(ask.since));
          if (crashes.length) {
            log(`kernel crash during ${ask.what}: ${crashes.join(' | ')}`);
            notes.push(`kernel crash during ${ask.what}: ${crashes.join(' | ')}`);
          }
          return Date.now() - ask.t0;
        }
        last = { answers: r.code === 0, same: r.code === 0 && now === ask.before };
        if (r.code !== 0) lastSsh = (r.stderr || `exit ${r.code}`).trim().slice(-300);
        const phase: BootPhase = bootPhase(consoleText.slice(since), from);
        if (phase === 'booted' && !bootedAt) bootedAt = Date.now();
        const step = nextBootStep({ phase, silentMs: Date.now() - lastOutput, sinceAskMs: Date.now() - t0, sshAnswers: last.answers, sameBoot: last.same, bootedForMs: bootedAt ? Date.now() - bootedAt : 0, askedAgain, powerCycled });
        if (step.do === 'ask-again') {
          const jobs = await vm.ssh('root', 'systemctl is-system-running; systemctl list-jobs --no-pager 2>&1 | head -15', { timeoutMs: 60_000 });
          const line = `${ask.what} never began (no shutdown on the console, the same boot ${ask.before.slice(0, 8)}, system ${jobs.stdout.split('\n')[0] || '?'}); systemctl list-jobs: ${jobs.stdout.split('\n').slice(1).join(' | ').trim() || jobs.stderr.trim()}; asking once more`;
          log(line);
          notes.push(`${ask.what} asked twice (it never began the first time)`);
          askedAgain = true;
          since = consoleText.length;
          t0 = Date.now();
          await ask.askAgain();
        } else if (step.do === 'power-cycle') {
          const line = `power-cycling the laptop during ${ask.what}: ${step.why} (stopping and starting qemu on the same disk, as a laptop's watchdog would)`;
          log(line);
          notes.push(`needed a power-cycle during ${ask.what}: ${step.why}`);
          powerCycled = true;
          mark(`power-cycled by the lab: ${step.why}`);
          await vm.stop();
          since = consoleText.length;
          from = 'booting';
          t0 = Date.now();
          bootedAt = 0;
          await vm.start();
        } else if (step.do === 'fail') {
          const boot = lastBoot(consoleText).split('\n').slice(-40).join('\n');
          throw new Error(`${ask.what}: ${step.why}; phase ${phase}${lastSsh ? `; last ssh error: ${lastSsh}` : ''}. Serial console (the last boot's last lines; all of it in ${consoleLog}):\n${boot}`);
        } else await sleep(3000);
      }
    },
    consoleMark: () => consoleText.length,
    note: (s) => void notes.push(s),
    takeNotes() {
      const n = notes;
      notes = [];
      return n;
    },
    ssh(user, command, o = {}) {
      return new Promise((resolve) => {
        const c = spawn('ssh', [...sshArgs(user), command], { stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        const timer = setTimeout(() => {
          stderr += `\n(timed out after ${Math.round((o.timeoutMs ?? DEFAULT_SSH_TIMEOUT_MS) / 1000)} s)`;
          c.kill('SIGKILL');
        }, o.timeoutMs ?? DEFAULT_SSH_TIMEOUT_MS);
        o.signal?.addEventListener('abort', () => c.kill('SIGKILL'));
        // ssh that fails at once (the laptop rebooting) closes its stdin before we write: not an error here.
        c.stdin.on('error', () => undefined);
        c.stdin.end(o.input ?? '');
        c.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code: code ?? 255, stdout, stderr });
        });
      });
    },
    async run(user, command, o) {
      let r = await vm.ssh(user, command, o);
      // ssh failing before the session (255, nothing ran) on a loaded host: one more try.
      if (r.code === 255 && /banner exchange|kex_exchange_identification|Connection timed out|Connection refused/.test(r.stderr)) r = await vm.ssh(user, command, o);
      if (r.code !== 0) throw new Error(`\`${command}\` as ${user} on the laptop exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-1500)}`);
      return r.stdout;
    },
    consoleTail(lines = 40) {
      try {
        return fs.readFileSync(consoleLog, 'utf8').split('\n').slice(-lines).join('\n');
      } catch {
        return '(no console output)';
      }
    },
    async stop() {
      const c = child;
      if (!c) return;
      c.kill('SIGKILL');
      await exited;
      // Its ssh masters end with qemu's connections.
      if (muxDir) fs.rmSync(muxDir, { recursive: true, force: true });
      muxDir = '';
    },
    running: () => child !== null,
  };
  return vm;
}

function accelArgs(a: Accel): string[] {
  return a.kind === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi'];
}

const PROBE_TIMEOUT_MS = 20_000;
// The kernel booted and ran userspace: initramfs-tools' /init prints the first as its first words;
// the kernel prints the second before any initramfs (dracut's, on the ostree base, says neither).
const PROBE_MARKS = ['Loading, please wait', 'Run /init as init process'];

/**
 * KVM where a guest boot is proven to work, TCG otherwise. The proof: the base image's own kernel
 * and initramfs, booted directly under KVM, reach userspace (PROBE_MARKS) within 20 s (under a
 * working KVM that takes ~2 s; where KVM is broken the guest hangs after "Probing EDD"). The answer
 * is kept for the host's boot (its kernel and KVM do not change until it reboots).
 */
export async function probeAccel(base: string, cacheDir = process.env.TABULA_LAB_CACHE ?? '/var/cache/tabula-lab'): Promise<Accel> {
  if (process.env.TABULA_LAB_ACCEL === 'tcg') return { kind: 'tcg', why: 'TCG (TABULA_LAB_ACCEL=tcg)' };
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return { kind: 'tcg', why: 'TCG (no usable /dev/kvm)' };
  }
  const kernel = path.join(base, 'vmlinuz');
  const initrd = path.join(base, 'initrd.img');
  if (!fs.existsSync(kernel) || !fs.existsSync(initrd)) return { kind: 'tcg', why: 'TCG (no kernel in the base image to probe KVM with)' };
  const hostBoot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const key = `${hostBoot} ${fs.realpathSync(kernel)} ${fs.statSync(fs.realpathSync(kernel)).size}`;
  const cached = path.join(cacheDir, 'kvm-probe.json');
  try {
    const c = JSON.parse(fs.readFileSync(cached, 'utf8')) as { key: string; ok: boolean; seconds: number };
    if (c.key === key) return c.ok ? { kind: 'kvm', why: `KVM (a probe boot reached the initramfs in ${c.seconds} s, this host boot)` } : { kind: 'tcg', why: `TCG (a KVM probe boot hung, this host boot)` };
  } catch {
    // No probe yet for this host boot.
  }
  const t0 = Date.now();
  const ok = await new Promise<boolean>((resolve) => {
    const c = spawn('qemu-system-x86_64', ['-machine', 'q35', '-accel', 'kvm', '-cpu', 'host', '-m', '512', '-smp', '1', '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1', '-nic', 'none', '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    const done = (v: boolean) => {
      clearTimeout(timer);
      c.kill('SIGKILL');
      resolve(v);
    };
    const timer = setTimeout(() => done(false), PROBE_TIMEOUT_MS);
    c.stdout.setEncoding('utf8').on('data', (d: string) => {
      out = (out + d).slice(-4096);
      if (PROBE_MARKS.some((m) => out.includes(m))) done(true);
    });
    c.once('error', () => done(false));
    c.once('exit', () => done(PROBE_MARKS.some((m) => out.includes(m))));
  });
  const seconds = Math.round((Date.now() - t0) / 1000);
  try {
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.writeFileSync(cached, JSON.stringify({ key, ok, seconds }) + '\n');
  } catch {
    // Not kept: the next run probes again.
  }
  return ok ? { kind: 'kvm', why: `KVM (a probe boot reached the initramfs in ${seconds} s)` } : { kind: 'tcg', why: `TCG (a KVM probe boot did not reach the initramfs within ${PROBE_TIMEOUT_MS / 1000} s)` };
}

/** Is TCG usable here at all (qemu, firmware)? A one-line reason when not. */
export function qemuUnavailable(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'the lab builds images with mmdebstrap and needs root';
  for (const tool of ['qemu-system-x86_64', 'mmdebstrap', 'mkfs.vfat', 'mcopy', 'sgdisk', 'mkfs.ext4']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (.ci/setup installs it)`;
  }
  for (const f of [OVMF_CODE, OVMF_VARS]) if (!fs.existsSync(f)) return `${f} is missing (package ovmf)`;
  return null;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
