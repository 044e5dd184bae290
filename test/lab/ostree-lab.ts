// The ostree laptop: a real ostree-booted Debian 13 (ostree-prepare-root in a dracut initramfs,
// OVMF → systemd-boot → the boot entries ostree wrote, copied to the ESP by the package), its images
// served by a web server on the host's loopback (guestfwd), walked through issue 13's scenarios:
// (a) first boot, (d) update staged through pkexec and finalized by ostree at shutdown, (e) rollback
// and back. Each prints one line, held or failed. run-lab.ts calls runOstreeLab.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildDeb } from './image';
import { OSTREE_REF, REPO_ADDR, buildOstreeBase, buildOstreeLab, serveStatic } from './ostree-image';
import { createVm, sleep, type Vm } from './vm';

const USER = 'ann';
const repo = path.resolve(__dirname, '../..');
const BOOT_TIMEOUT_MS = Number(process.env.TABULA_LAB_BOOT_TIMEOUT_S ?? 1500) * 1000;

export const OSTREE_SCENARIOS = {
  a: 'first boot: tabula status shows image 1, the agent is the running user service',
  d: 'image 2 is pulled and staged through pkexec (ostree admin deploy --stage, finalized at shutdown); after a reboot it runs, /etc is fresh, the home is intact',
  e: 'rollback to 1 and back to 2',
} as const;
export type OstreeScenarioId = keyof typeof OSTREE_SCENARIOS;

export interface OstreeLabResult {
  backend: 'ostree';
  id: string;
  title: string;
  outcome: 'held' | 'failed' | 'skipped';
  detail: string;
}

export interface OstreeLabOptions {
  /** Scenario ids to run (null: all). The others are recorded as skipped. */
  only: Set<string> | null;
  /** Why a scenario not chosen is skipped (e.g. "not run by default"). */
  skippedBecause: string;
  work: string;
  results: OstreeLabResult[];
  figures: Record<string, string>;
  log: (s: string) => void;
}

interface Status {
  image: { version: string };
  imageUpdate: { state: string; reason: string; booted: { version: string } | null; staged: { version: string } | null; rollback: { version: string } | null; lastPullBytes: number | null };
}

export async function runOstreeLab(o: OstreeLabOptions): Promise<void> {
  const ids = Object.keys(OSTREE_SCENARIOS) as OstreeScenarioId[];
  const record = (id: OstreeScenarioId, outcome: OstreeLabResult['outcome'], detail: string, vm?: Vm) => {
    if (o.results.some((r) => r.backend === 'ostree' && r.id === id)) return;
    o.results.push({ backend: 'ostree', id, title: OSTREE_SCENARIOS[id], outcome, detail });
    const head = `lab ostree (${id}) ${OSTREE_SCENARIOS[id]}: ${outcome}`;
    if (outcome !== 'failed') console.log(`${head}${detail ? ` (${detail})` : ''}`);
    else {
      console.log(`${head}\n    ${detail.split('\n').join('\n    ')}`);
      if (vm && !detail.includes('Serial console')) console.log(`    serial console (last lines):\n${vm.consoleTail(25).replace(/^/gm, '      ')}`);
    }
  };
  const wanted = ids.filter((id) => !o.only || o.only.has(id));
  for (const id of ids) if (!wanted.includes(id)) record(id, 'skipped', o.skippedBecause);
  if (!wanted.length) return;

  let vm: Vm | null = null;
  let server: Awaited<ReturnType<typeof serveStatic>> | null = null;
  try {
    const tSetup = Date.now();
    const base = buildOstreeBase(o.log);
    const deb = buildDeb(fs.mkdtempSync(path.join(o.work, 'ostree-dist-')));
    const lab = buildOstreeLab({
      cache: path.dirname(base),
      base,
      deb,
      user: USER,
      log: o.log,
      config: (k) => ({
        image: { backend: 'ostree', url: `http://${REPO_ADDR}/repo`, ostreeRef: OSTREE_REF, ostreeOsName: 'tabula', gpgKeyring: k.gpgKeyring, autoPull: false },
        fleet: { trustedKeys: [k.fleetPub] },
      }),
    });
    const laptopDir = path.join(o.work, 'laptop-ostree');
    fs.mkdirSync(laptopDir, { recursive: true });
    const disk = path.join(laptopDir, 'disk.img');
    execFileSync('cp', ['--sparse=always', lab.disk, disk]);
    // The fleet admin refreshes the summary's signature and expiry (the cached repo may be days old).
    execFileSync(process.execPath, [path.join(repo, 'bin/tabula-fleet.js'), 'refresh', '--channel', 'stable', '--key', lab.fleetKey, '--out', lab.serverDir, '--gpg-key', lab.gpg.keyId, '--gpg-homedir', lab.gpg.homedir], { stdio: 'ignore' });
    server = await serveStatic(lab.serverDir);
    o.log(`ostree laptop ready in ${Math.round((Date.now() - tSetup) / 1000)} s`);

    vm = await createVm({ dir: laptopDir, disk, sshKey: lab.sshKey, forwards: [{ guest: REPO_ADDR, guestPort: 80, hostPort: server.port }] });
    const laptop = vm;
    const status = async (): Promise<Status> => JSON.parse(await laptop.run(USER, 'tabula status --json')) as Status;
    const waitFor = async <T>(probe: () => Promise<T | null>, ms: number, what: string): Promise<T> => {
      const t0 = Date.now();
      let last = '';
      while (Date.now() - t0 < ms) {
        try {
          const v = await probe();
          if (v !== null) return v;
        } catch (err) {
          last = (err as Error).message.slice(0, 400);
        }
        await sleep(2000);
      }
      throw new Error(`${what} within ${Math.round(ms / 1000)} s${last ? ` (last: ${last})` : ''}`);
    };
    const agentUp = () => waitFor(() => status(), 900_000, 'tabula status as the logged-in user never answered');
    const bootId = async () => (await laptop.run('root', 'cat /proc/sys/kernel/random/boot_id')).trim();
    const reboot = async (): Promise<number> => {
      const before = await bootId();
      const t0 = Date.now();
      await laptop.ssh('root', 'systemctl reboot', { timeoutMs: 30_000 });
      await waitFor(async () => (await laptop.ssh('root', 'cat /proc/sys/kernel/random/boot_id', { timeoutMs: 20_000 })).stdout.trim().replace(before, '') || null, BOOT_TIMEOUT_MS, `the laptop did not come back from a reboot. Serial console (last lines):\n${laptop.consoleTail()}\n`);
      await laptop.ssh('root', 'systemctl is-system-running --wait', { timeoutMs: 300_000 });
      return Date.now() - t0;
    };
    /** What ostree and systemd-boot say about this boot: the booted deployment's version and the entry. */
    const booted = async () => {
      const out = await laptop.run('root', 'test -e /run/ostree-booted && echo ostree-booted; ostree admin status; tr -d "\\0" < /sys/firmware/efi/efivars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f | cut -c5- | tr -cd "[:print:]"; echo; cat /proc/cmdline');
      const lines = out.split('\n');
      const star = lines.findIndex((l) => l.startsWith('* '));
      const version = star >= 0 ? /Version: (\S+)/.exec(lines.slice(star + 1, star + 3).join('\n'))?.[1] ?? null : null;
      return { ostreeBooted: lines[0] === 'ostree-booted', version, entry: lines.at(-3) ?? '', cmdline: lines.at(-2) ?? '', text: out };
    };
    const scenario = async (id: OstreeScenarioId, fn: () => Promise<string | void>): Promise<boolean> => {
      if (!wanted.includes(id)) return false;
      try {
        record(id, 'held', (await fn()) ?? '', laptop);
        return true;
      } catch (err) {
        record(id, 'failed', (err as Error).message, laptop);
        return false;
      }
    };

    const up = await scenario('a', async () => {
      const t0 = Date.now();
      await laptop.start();
      const ms = await laptop.waitForSsh(BOOT_TIMEOUT_MS);
      o.figures['ostree: first boot, power on to ssh'] = `${Math.round(ms / 1000)} s`;
      const s = await agentUp();
      if (s.image.version !== '1') throw new Error(`tabula status shows image ${s.image.version}, expected 1`);
      const active = (await laptop.ssh(USER, 'systemctl --user is-active tabula-agent.service')).stdout.trim();
      if (active !== 'active') throw new Error(`tabula-agent.service is "${active}" in ${USER}'s systemd, expected active`);
      const b = await booted();
      if (!b.ostreeBooted || b.version !== '1' || !/\bostree=\/ostree\/boot\.\d\//.test(b.cmdline)) throw new Error(`not booted by ostree into version 1:\n${b.text}`);
      if (!/^tabula-ostree-.*\.conf$/.test(b.entry)) throw new Error(`systemd-boot did not start one of ostree's entries (LoaderEntrySelected "${b.entry}")`);
      return `power on to agent ${Math.round((Date.now() - t0) / 1000)} s; systemd-boot entry ${b.entry}`;
    });
    if (!up) {
      for (const id of wanted) if (id !== 'a') record(id, 'failed', 'the ostree laptop did not boot (scenario a)');
      return;
    }

    const homeFiles = async () => laptop.run(USER, 'cd ~ && find . -path ./.cache -prune -o -type f -name "*.txt" -exec sha256sum {} + | sort');
    await scenario('d', async () => {
      await laptop.run(USER, 'mkdir -p ~/Documents && echo "written on image 1" > ~/Documents/note.txt');
      const sentBefore = server!.bytesSent();
      const out = await laptop.run(USER, 'tabula image pull --json', { timeoutMs: 900_000 });
      const s = JSON.parse(out) as Status['imageUpdate'];
      if (s.staged?.version !== '2') throw new Error(`after "tabula image pull", image ${s.staged?.version ?? 'none'} is staged (state ${s.state}: ${s.reason})`);
      const served = server!.bytesSent() - sentBefore;
      o.figures['ostree: bytes pulled for image 2 (server sent)'] = `${served}`;
      o.figures['ostree: bytes pulled for image 2 (ostree says)'] = `${s.lastPullBytes}`;
      const pk = await laptop.run('root', `journalctl -b --no-pager -o cat _COMM=pkexec | grep -c "${USER}: Executing command \\[USER=root\\].*tabula-helper stage" || true`);
      if (Number(pk.trim()) < 1) throw new Error('no pkexec record of the agent running "tabula-helper stage"');
      const adm = await laptop.run('root', 'ostree admin status; systemctl is-active ostree-finalize-staged.service');
      if (!/\(staged\)/.test(adm) || !/^active$/m.test(adm)) throw new Error(`image 2 is not staged for ostree-finalize-staged:\n${adm}`);
      await laptop.run('root', 'echo tampered > /etc/tabula-lab-root-edit');
      const before = await homeFiles();
      const ms = await reboot();
      o.figures['ostree: reboot into a staged image (systemctl reboot to ssh)'] = `${Math.round(ms / 1000)} s`;
      const st = await agentUp();
      const b = await booted();
      if (st.image.version !== '2' || b.version !== '2') throw new Error(`after the reboot: tabula status shows ${st.image.version}, ostree booted ${b.version}; expected 2\n${b.text}`);
      const left = (await laptop.run('root', 'cat /etc/tabula-lab-root-edit 2>/dev/null || true')).trim();
      if (left) throw new Error('the root edit in /etc survived the reboot');
      const after = await homeFiles();
      if (after !== before || !after.includes('note.txt')) throw new Error(`the home changed across the update:\nbefore ${before}\nafter ${after}`);
      const doc = await laptop.run('root', 'cat /usr/share/doc/tabula-lab-image-2');
      if (doc !== 'new in image 2\n') throw new Error('image 2 content is missing');
      return `${served} bytes served for the update; reboot ${Math.round(ms / 1000)} s; entry ${b.entry}`;
    });

    await scenario('e', async () => {
      const go = async (to: string) => {
        const r = JSON.parse(await laptop.run(USER, 'tabula image rollback --json')) as Status['imageUpdate'];
        if (r.staged?.version !== to) throw new Error(`rollback staged ${r.staged?.version ?? 'nothing'}, expected ${to} (${r.state}: ${r.reason})`);
        await reboot();
        const st = await agentUp();
        const b = await booted();
        if (st.image.version !== to || b.version !== to) throw new Error(`after the rollback to ${to} and a reboot: tabula status shows ${st.image.version}, ostree booted ${b.version}\n${b.text}`);
      };
      const from = (await status()).image.version;
      const to = from === '2' ? '1' : '2';
      await go(to);
      await go(from);
      return `${from} → ${to} → ${from}`;
    });
  } catch (err) {
    console.log(`lab ostree: could not run: ${(err as Error).message}`);
    for (const id of wanted) record(id, 'failed', `the ostree lab could not run: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await vm?.stop();
    await server?.close();
  }
}
