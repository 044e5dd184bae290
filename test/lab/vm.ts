// A virtual laptop: qemu with OVMF, booting its GPT disk through systemd-boot; KVM only where a
// probe boot proved it works (on this kind of machine /dev/kvm opens but a guest hangs at its first
// kernel output, see ENV-FACTS), TCG otherwise. Networking is qemu's user mode with restrict=on: the guest
// reaches nothing but the guestfwd rules (each a connection to a port on the host's 127.0.0.1),
// and the lab reaches the guest's sshd through one hostfwd bound to 127.0.0.1.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

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
  /** Waits until the guest's sshd answers a command; throws with the console's tail. */
  waitForSsh(timeoutMs: number): Promise<number>;
  ssh(user: string, command: string, opts?: { timeoutMs?: number; input?: string }): Promise<SshResult>;
  /** ssh that must succeed: throws with the command's output otherwise. */
  run(user: string, command: string, opts?: { timeoutMs?: number; input?: string }): Promise<string>;
  consoleTail(lines?: number): string;
  /** Power off (kills qemu). */
  stop(): Promise<void>;
  running(): boolean;
}

export async function createVm(opts: VmOptions): Promise<Vm> {
  const sshPort = await freePort();
  const consoleLog = path.join(opts.dir, 'console.log');
  const vars = path.join(opts.dir, 'OVMF_VARS.fd');
  if (!fs.existsSync(vars)) fs.copyFileSync(OVMF_VARS, vars);
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const killOnExit = () => child?.kill('SIGKILL');

  const fwd = opts.forwards.map((f) => `,guestfwd=tcp:${f.guest}:${f.guestPort}-cmd:${process.execPath} ${GUESTFWD} 127.0.0.1 ${f.hostPort}`).join('');
  const args = [
    '-machine', 'q35',
    ...accelArgs(opts.accel),
    '-smp', String(opts.accel.cpus ?? 2),
    '-m', String(opts.memoryMiB ?? 1536),
    '-drive', `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`,
    '-drive', `if=pflash,format=raw,file=${vars}`,
    '-drive', `file=${opts.disk},format=raw,if=virtio,cache=unsafe`,
    '-nic', `user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:${sshPort}-:22${fwd}`,
    '-display', 'none',
    '-vga', 'std',
    '-serial', `file:${consoleLog}`,
    '-monitor', 'none',
  ];

  const sshArgs = (user: string) => [
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

  const vm: Vm = {
    sshPort,
    consoleLog,
    async start() {
      if (child) return;
      fs.appendFileSync(consoleLog, `\n==== power on ${new Date().toISOString()}\n`);
      const c = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
      child = c;
      process.on('exit', killOnExit);
      exited = new Promise((resolve) =>
        c.once('exit', (code, signal) => {
          if (child === c) child = null;
          process.off('exit', killOnExit);
          if (code) fs.appendFileSync(consoleLog, `\n==== qemu exited ${code ?? signal}: ${stderr}\n`);
          resolve();
        }),
      );
      await new Promise<void>((resolve, reject) => {
        c.once('spawn', resolve);
        c.once('error', reject);
      });
    },
    async waitForSsh(timeoutMs) {
      const t0 = Date.now();
      while (Date.now() - t0 < timeoutMs) {
        if (!child) throw new Error(`the virtual laptop powered off while booting.\n${vm.consoleTail()}`);
        const r = await vm.ssh('root', 'systemctl is-system-running --wait >/dev/null 2>&1; true', { timeoutMs: 60_000 }).catch(() => null);
        if (r && r.code === 0) return Date.now() - t0;
        await sleep(3000);
      }
      throw new Error(`the virtual laptop did not answer ssh within ${Math.round(timeoutMs / 1000)} s. Serial console (last lines):\n${vm.consoleTail()}`);
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
    },
    running: () => child !== null,
  };
  return vm;
}

function accelArgs(a: Accel): string[] {
  return a.kind === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi'];
}

const PROBE_TIMEOUT_MS = 20_000;
// Printed by initramfs-tools' /init as its first words: the kernel booted and ran userspace.
const PROBE_MARK = 'Loading, please wait';

/**
 * KVM where a guest boot is proven to work, TCG otherwise. The proof: the base image's own kernel
 * and initramfs, booted directly under KVM, reach initramfs-tools' first line within 20 s (under a
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
      if (out.includes(PROBE_MARK)) done(true);
    });
    c.once('error', () => done(false));
    c.once('exit', () => done(out.includes(PROBE_MARK)));
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

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
