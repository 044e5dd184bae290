// The lab: virtual stateless laptops, booted for real (OVMF → systemd-boot → Tabula's boot entry →
// the initramfs hook → the deployment), driven over ssh, walking the scenarios of issue 13 in
// order and sharing boots. Each scenario prints one line, `held` or `failed`; the totals go to
// test-results/lab.json for test/run-all.mjs. Where qemu cannot run, it says so in one line and
// every scenario counts as skipped. Run alone: `npx vite-node test/lab/run-lab.ts`.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSshServer, type SshServer } from '../fixtures/sshd';
import { buildBase, buildDeb, makeImageTree, makeLaptopDisk, publishRsyncTree, type LabImageSettings } from './image';
import { createVm, qemuUnavailable, type Vm } from './vm';

const BOOT_TIMEOUT_MS = Number(process.env.TABULA_LAB_BOOT_TIMEOUT_S ?? 900) * 1000;
const USER = 'ann';
const NAS_ADDR = '10.0.2.100';

interface Scenario {
  id: string;
  title: string;
  run: () => Promise<string | void>;
}

const results: { backend: string; id: string; title: string; outcome: 'held' | 'failed' | 'skipped'; detail: string; seconds: number }[] = [];
const figures: Record<string, string> = {};
const log = (s: string) => console.log(`  lab: ${s}`);

function writeResults() {
  fs.mkdirSync('test-results', { recursive: true });
  const count = (o: string) => results.filter((r) => r.outcome === o).length;
  fs.writeFileSync('test-results/lab.json', JSON.stringify({ passed: count('held'), failed: count('failed'), skipped: count('skipped'), results, figures }, null, 2) + '\n');
}

const rsyncTreeScenarios = ['a'] as const;

async function main() {
  const why = process.env.TABULA_LAB === 'skip' ? 'TABULA_LAB=skip' : qemuUnavailable();
  if (why) {
    console.log(`lab: skipped — virtual laptops cannot run here (${why})`);
    for (const id of rsyncTreeScenarios) results.push({ backend: 'rsync-tree', id, title: '', outcome: 'skipped', detail: why, seconds: 0 });
    writeResults();
    return;
  }
  const work = fs.mkdtempSync(path.join(process.env.TABULA_LAB_WORK ?? os.tmpdir(), 'tabula-lab-'));
  let nas: SshServer | null = null;
  let vm: Vm | null = null;
  try {
    const base = buildBase(log);
    nas = await startSshServer();
    const serverDir = path.join(work, 'fleet');
    const nasDir = path.join(work, 'nas');
    fs.mkdirSync(serverDir, { recursive: true });
    fs.mkdirSync(path.join(nasDir, USER), { recursive: true });
    execFileSync(process.execPath, [path.resolve(__dirname, '../../bin/tabula-fleet.js'), 'keygen', '--out', path.join(work, 'fleet')], { stdio: 'ignore' });
    const fleetPub = fs.readFileSync(path.join(work, 'fleet.pub'), 'utf8').trim();
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'tabula-lab', '-f', path.join(work, 'lab-key')]);
    const nasHostKey = fs.readFileSync(path.join(path.dirname(nas.identityFile), 'host_ed25519.pub'), 'utf8').trim();
    const sshOptions = ['-i', '/usr/share/defaults/tabula/lab/fleet-key', '-o', 'UserKnownHostsFile=/usr/share/defaults/tabula/lab/known_hosts', '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-F', '/dev/null'];
    const deb = buildDeb(path.join(work, 'dist'));
    log(deb ? `installing ${path.basename(deb)}` : 'no Debian package script: installing the build output');
    const settings: LabImageSettings & { deb: string | null } = {
      deb,
      user: USER,
      sshPublicKey: fs.readFileSync(path.join(work, 'lab-key.pub'), 'utf8'),
      fleetPrivateKey: fs.readFileSync(nas.identityFile, 'utf8'),
      knownHosts: `${NAS_ADDR} ${nasHostKey}\n`,
      config: {
        storage: { url: `ssh://${nas.user}@${NAS_ADDR}:22${nasDir}/${USER}`, sshOptions },
        image: { backend: 'rsync-tree', url: `ssh://${nas.user}@${NAS_ADDR}:22${serverDir}`, channel: 'stable', sshOptions },
        fleet: { trustedKeys: [fleetPub] },
      },
    };

    const t0 = Date.now();
    const tree1 = makeImageTree(base, path.join(work, 'trees/1'), '1', settings);
    publishRsyncTree(tree1, '1', serverDir, path.join(work, 'fleet.key'));
    fs.rmSync(tree1, { recursive: true, force: true });
    const laptopDir = path.join(work, 'laptop-rsync-tree');
    fs.mkdirSync(laptopDir);
    const disk = makeLaptopDisk({ dir: laptopDir, base, serverDir, version: '1', user: USER });
    log(`image 1 built, published and installed on a laptop disk in ${Math.round((Date.now() - t0) / 1000)} s`);

    vm = await createVm({ dir: laptopDir, disk, sshKey: path.join(work, 'lab-key'), forwards: [{ guest: NAS_ADDR, guestPort: 22, hostPort: nas.port }] });
    const laptop = vm;
    const scenarios: Scenario[] = [
      {
        id: 'a',
        title: 'first boot: tabula status shows image 1, the agent is the running user service',
        run: async () => {
          const tBoot = Date.now();
          await laptop.start();
          const ms = await laptop.waitForSsh(BOOT_TIMEOUT_MS);
          figures['rsync-tree first boot to ssh'] = `${Math.round(ms / 1000)} s`;
          const status = await waitFor(async () => {
            const r = await laptop.ssh(USER, 'tabula status --json');
            return r.code === 0 ? (JSON.parse(r.stdout) as { image: { version: string } }) : null;
          }, 180_000, 'tabula status as the logged-in user never answered');
          if (status.image.version !== '1') throw new Error(`tabula status shows image ${status.image.version}, expected 1`);
          const active = (await laptop.ssh(USER, 'systemctl --user is-active tabula-agent.service')).stdout.trim();
          if (active !== 'active') throw new Error(`tabula-agent.service is "${active}" in the user's systemd, expected active`);
          // The console session is what polkit needs for the helper: local, active, on seat0.
          const sessions = await laptop.run('root', `loginctl list-sessions --no-legend | awk '$3=="${USER}" {print $1}' | while read s; do loginctl show-session "$s" -p Active -p Remote -p TTY --value | tr '\\n' ' '; echo; done`);
          if (!/yes no tty1/.test(sessions)) throw new Error(`no active local console session for ${USER}: ${sessions.trim()}`);
          const booted = (await laptop.run('root', 'cat /run/tabula/booted')).trim();
          if (booted !== '1') throw new Error(`the boot path booted "${booted}", expected deployment 1`);
          return `boot to agent ${Math.round((Date.now() - tBoot) / 1000)} s`;
        },
      },
    ];
    for (const s of scenarios) await runScenario('rsync-tree', s, laptop);
  } catch (err) {
    console.log(`lab: could not run (${(err as Error).message})`);
    for (const id of rsyncTreeScenarios) if (!results.some((r) => r.id === id)) results.push({ backend: 'rsync-tree', id, title: '', outcome: 'failed', detail: (err as Error).message, seconds: 0 });
  } finally {
    await vm?.stop();
    await nas?.dispose();
    if (!process.env.TABULA_LAB_KEEP) fs.rmSync(work, { recursive: true, force: true });
    else console.log(`  lab: kept ${work}`);
    writeResults();
  }
}

async function runScenario(backend: string, s: Scenario, vm: Vm) {
  const t0 = Date.now();
  try {
    const note = await s.run();
    const seconds = Math.round((Date.now() - t0) / 1000);
    results.push({ backend, id: s.id, title: s.title, outcome: 'held', detail: note ?? '', seconds });
    console.log(`lab ${backend} (${s.id}) ${s.title}: held${note ? ` (${note})` : ''} [${seconds} s]`);
  } catch (err) {
    const seconds = Math.round((Date.now() - t0) / 1000);
    const msg = (err as Error).message;
    results.push({ backend, id: s.id, title: s.title, outcome: 'failed', detail: msg, seconds });
    console.log(`lab ${backend} (${s.id}) ${s.title}: failed [${seconds} s]\n    ${msg.split('\n').join('\n    ')}`);
    if (!msg.includes('Serial console')) console.log(`    serial console (last lines):\n${vm.consoleTail(25)}`);
  }
}

async function waitFor<T>(probe: () => Promise<T | null>, timeoutMs: number, what: string): Promise<T> {
  const t0 = Date.now();
  let last: unknown = null;
  while (Date.now() - t0 < timeoutMs) {
    try {
      const v = await probe();
      if (v !== null) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
  throw new Error(`${what} within ${Math.round(timeoutMs / 1000)} s${last ? ` (${(last as Error).message})` : ''}`);
}

void main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
