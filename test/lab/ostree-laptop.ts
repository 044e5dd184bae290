// The ostree laptop: a real ostree-booted Debian 13 (ostree-prepare-root in a dracut initramfs,
// OVMF → systemd-boot → the boot entries ostree wrote, copied to the ESP by the package), its images
// served by a web server on the host's loopback (guestfwd), walked through issue 13's scenarios:
// (a) first boot, (b) the first login restores the home from the NAS the image names, (c) a backup queued offline crosses a reboot, (d) update staged through pkexec and
// finalized by ostree at shutdown ((c) and (d) share that reboot), (e) rollback to 1 and back to 2
// (a reboot each way), (g) the helpdesk's reimage, (f) a broken image falls back by itself after its
// one failed try; (h) does not apply. Seven boots for all of them (a power on, five reboots, and
// (f)'s failed try). After every reboot the lab checks that a counted boot was marked good
// (systemd-bless-boot), and keeps what systemd said where it was not (blessCheck).
// Registered in run-lab.ts; images and the pristine disk are cached (ostree-image.ts).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor, type LabBackend } from './lab';
import { createLaptop, seedNasHome, type AgentStatusJson } from './laptop';
import { OSTREE_REF, REPO_ADDR, buildOstreeBase, buildOstreeLab, serveStatic, type OstreeLab } from './ostree-image';
import { createVm, type Vm } from './vm';
import { startSshServer, type SshServer } from '../fixtures/sshd';

const USER = 'ann';
/** The person's NAS (sshd on the host's loopback) and the helpdesk's signed commands (HTTP), as the laptop sees them. */
const NAS_ADDR = '10.0.2.100';
const COMMANDS_ADDR = '10.0.2.103';
const repo = path.resolve(__dirname, '../..');

/** A config layer's storage and backup settings naming the lab's NAS, with the laptop's paths to its key and known hosts. */
function nasConfig(nasUser: string, nasHome: string, key: string, knownHosts: string) {
  return {
    storage: { url: `ssh://${nasUser}@${NAS_ADDR}:22${nasHome}`, sshOptions: ['-i', key, '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-F', '/dev/null'], connectTimeoutSeconds: 5 },
    backup: { intervalMinutes: 60, retryMinSeconds: 5, retryMaxSeconds: 20, debounceSeconds: 2 },
  };
}

/**
 * The ostree laptop's base, images and disk (ostree-image.ts), from the cache or made now; images 2
 * and 3 may still be in the making when this resolves (`ready`). The one place their settings are
 * named: run-lab.ts makes the same cache entries ahead of the walk (ostree-prepare.ts).
 */
export async function openOstreeLab(deb: string | null, log: (s: string) => void): Promise<{ lab: OstreeLab; nasHome: string }> {
  const base = buildOstreeBase(log);
  // The NAS the images name: its keys are kept with the images (ostree-image.ts), its folder at a
  // path that does not change between runs (one lab at a time uses it).
  const nasHome = path.join(path.dirname(base), 'ostree-lab-nas', USER);
  const lab = await buildOstreeLab({
    cache: path.dirname(base),
    base,
    deb,
    user: USER,
    nasAddr: NAS_ADDR,
    log,
    config: (k) => ({
      // The interval is long on purpose: the first login restores at once, not when the interval comes round.
      ...nasConfig(os.userInfo().username, nasHome, k.nasKey, k.knownHosts),
      image: { backend: 'ostree', url: `http://${REPO_ADDR}/repo`, ostreeRef: OSTREE_REF, ostreeOsName: 'tabula', gpgKeyring: k.gpgKeyring, autoPull: false },
      fleet: { trustedKeys: [k.fleetPub] },
    }),
  });
  return { lab, nasHome };
}

export const ostreeLaptop: LabBackend = {
  name: 'ostree',
  scenarios: {
    a: 'first boot: tabula status shows image 1, the agent is the running user service',
    b: 'first login on a new laptop restores the home from the NAS',
    c: 'an edit is backed up to the NAS; with the NAS down "Back up now" is queued, survives a reboot (the /var reset at boot), and runs by itself when the NAS is back',
    d: 'image 2 is pulled and staged through pkexec (ostree admin deploy --stage, finalized at shutdown); after a reboot it runs, a root edit in /etc and a stray file in /var are gone, the home is intact',
    e: 'rollback to 1 and back: the helpdesk\'s rollback boots 1, where the status offers 2 again, and the person\'s own "tabula image pull" brings 2 back',
    f: 'a broken image 3 (its target never reached) falls back to 2 by itself (systemd-boot boot counting, one try: /etc/kernel/tries when 3 is staged), the status says so, and 3 is not staged again',
    g: 'helpdesk: a signed reimage command is refused while the home has unsynced changes, runs after the backup (no password), and the laptop comes back pristine with the home intact',
    h: 'soft-reboot into a staged image',
  },
  // Seen to hold here end to end twice with no relevant change between; the others run on request
  // (TABULA_LAB_SCENARIOS) and count as skipped, each with why it is not in the default yet.
  // (e), (f), (g): out from the lead's fresh-clone check of session 9 until session 11: each held in
  // session 10's full walk and in session 11's run 1 (README, lab section).
  defaults: ['a', 'b', 'c', 'd', 'e', 'f', 'g'],
  async walk(ctx, run) {
    let vm: Vm | null = null;
    let server: Awaited<ReturnType<typeof serveStatic>> | null = null;
    let commands: Awaited<ReturnType<typeof serveStatic>> | null = null;
    let nas: SshServer | null = null;
    let lab: OstreeLab | null = null;
    // Every run says why (h) is not walked here.
    run.record('h', 'skipped', `does not apply: Debian 13's ostree (2025.2) cannot prepare a staged deployment for "systemctl soft-reboot" (ostree admin prepare-soft-reboot came in ostree 2025.3); an ostree update takes a full reboot`);
    try {
      const tSetup = Date.now();
      const opened = await openOstreeLab(ctx.deb, ctx.log);
      lab = opened.lab;
      const nasHome = opened.nasHome;
      const laptopDir = path.join(ctx.work, 'laptop');
      fs.mkdirSync(laptopDir, { recursive: true });
      const disk = path.join(laptopDir, 'disk.img');
      execFileSync('cp', ['--sparse=always', lab.disk, disk]);
      // The fleet's server offers one version at a time: a copy of the cache's server as that version
      // left it, its summary re-signed with a fresh serial and expiry, as a fleet admin refreshes it.
      // 1 while the laptop starts; 2 and 3 when their scenarios come (made while the laptop boots).
      const serverDir = path.join(ctx.work, 'server');
      const fleet = lab;
      let offered = '';
      const offer = async (v: string) => {
        const { server: at, commit } = await fleet.ready(v);
        offered = v;
        fs.rmSync(serverDir, { recursive: true, force: true });
        execFileSync('cp', ['-al', at, serverDir]);
        execFileSync(process.execPath, [path.join(repo, 'bin/tabula-fleet.js'), 'refresh', '--channel', 'stable', '--key', fleet.fleetKey, '--out', serverDir, '--gpg-key', fleet.gpg.keyId, '--gpg-homedir', fleet.gpg.homedir], { stdio: 'ignore' });
        return commit;
      };
      await offer('1');
      server = await serveStatic(serverDir);
      // The person's home as another laptop left it on the NAS (a real sync, with the storage marker).
      nas = await startSshServer({ keys: lab.nasKeys });
      fs.rmSync(nasHome, { recursive: true, force: true });
      fs.mkdirSync(nasHome, { recursive: true });
      const seeded = seedNasHome(ctx.work, nasHome);
      // (g): the helpdesk. The cached images do not name its key (this run's): (g) gives the laptop an
      // administrator's config layer in /etc/tabula, which the next boot drops.
      const commandsDir = path.join(ctx.work, 'fleet-commands');
      fs.mkdirSync(commandsDir);
      commands = await serveStatic(commandsDir);
      execFileSync(process.execPath, [path.join(repo, 'bin/tabula-fleet.js'), 'keygen', '--out', path.join(ctx.work, 'helpdesk')], { stdio: 'ignore' });
      ctx.log(`ostree laptop ready in ${Math.round((Date.now() - tSetup) / 1000)} s`);

      vm = await createVm({
        dir: laptopDir,
        disk,
        accel: ctx.accel,
        sshKey: lab.sshKey,
        forwards: [
          { guest: REPO_ADDR, guestPort: 80, hostPort: server.port },
          { guest: NAS_ADDR, guestPort: 22, hostPort: nas.port },
          { guest: COMMANDS_ADDR, guestPort: 80, hostPort: commands.port },
        ],
        log: ctx.log,
      });
      const laptop = createLaptop(vm, USER);
      const agentUp = () => laptop.agentUp();
      // The agent's own answer on its socket (what the window shows) once it is up: `tabula status`
      // costs the TCG guest ~10 s of processor (Node loading its bundle), so only (a) asks it, where the
      // person's command is what the scenario shows. When the socket never answers, agentUp says why.
      const agentAnswers = () => waitFor(() => laptop.peek(), 900_000, 'the agent never answered').catch(() => laptop.agentUp(60_000));
      let diags = 0;
      /** What systemd and systemd-boot say of this boot's assessment, kept in a file beside the console and shown in the log. */
      const bootDiag = async (why: string) => {
        const r = await laptop.vm.ssh('root', [
          'echo "## LoaderEntrySelected, LoaderBootCountPath"; for v in LoaderEntrySelected LoaderBootCountPath; do f=/sys/firmware/efi/efivars/$v-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f; [ -e $f ] && tail -c +5 $f | tr -d "\\0"; echo; done',
          'echo "## systemctl status systemd-bless-boot"; systemctl status systemd-bless-boot --no-pager -l 2>&1',
          'echo "## journalctl -b -u systemd-bless-boot"; journalctl -b -u systemd-bless-boot --no-pager -o short-monotonic 2>&1',
          'echo "## bootctl list"; bootctl list --no-pager 2>&1',
          'echo "## the ESP"; ls -l /efi/loader/entries 2>&1; findmnt /efi 2>&1; findmnt /boot 2>&1; journalctl -b -u efi.mount --no-pager -o short-monotonic 2>&1 | tail -5',
          'echo "## boot-complete.target"; systemctl show -p ActiveState -p ActiveEnterTimestampMonotonic boot-complete.target multi-user.target 2>&1',
          'echo "## ostree admin status"; ostree admin status 2>&1; ls /boot/loader/entries 2>&1',
        ].join('; '), { timeoutMs: 120_000 });
        const file = path.join(laptopDir, `boot-diag-${++diags}.txt`);
        fs.writeFileSync(file, `${why}\n\n${r.stdout}${r.stderr}`);
        ctx.log(`${why}: what systemd says is in ${file}:\n${(r.stdout + r.stderr).trim().split('\n').slice(0, 60).map((l) => `      ${l}`).join('\n')}`);
        return file;
      };
      /**
       * After a boot: a boot systemd-boot counted (LoaderBootCountPath set) must have been marked good
       * by systemd-bless-boot once the target was reached, its entry on the ESP without a counter.
       * Session 9 saw it FAILED after (g)'s reimage, and (f) then had no good entry to fall back to.
       */
      const blessCheck = async (what: string) => {
        const out = await laptop.vm.run('root', 'f=/sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f; [ -e $f ] && tail -c +5 $f | tr -d "\\0"; echo; systemctl show -P ActiveState systemd-bless-boot.service; systemctl show -P Result systemd-bless-boot.service; ls /efi/loader/entries');
        const [countPath = '', active = '', result = '', ...entries] = out.split('\n').map((l) => l.trim());
        if (!countPath) return;
        const counted = countPath.split('\\').at(-1)!;
        const good = counted.replace(/\+\d+(-\d+)?\.conf$/, '.conf');
        if (active === 'active' && result === 'success' && entries.includes(good)) return;
        const file = await bootDiag(`the boot after ${what} started ${counted} (a counted try) but it was not marked good: systemd-bless-boot ${active}/${result}, the ESP has ${entries.filter(Boolean).join(' ')}`);
        laptop.vm.note(`systemd-bless-boot did not mark the boot after ${what} good (${active}/${result}; ${path.basename(file)})`);
      };
      /** A scenario whose boots may have gone elsewhere than expected: on failure, what systemd says is kept too. */
      const withDiag = (id: string, fn: () => Promise<string>) => async () => {
        try {
          return await fn();
        } catch (err) {
          const file = laptop.vm.running() ? await bootDiag(`(${id}) failed`).catch(() => null) : null;
          if (file) (err as Error).message += `\n(boot assessment, bootctl and ostree's view: ${file})`;
          throw err;
        }
      };
      let analyses = 0;
      /**
       * TABULA_LAB_ANALYZE=1: where the boot now ending spent its time, as systemd saw it (a file per
       * boot beside the console; systemd-analyze answers once the boot has finished, so it is asked
       * before the next reboot). Off by default: each costs the guest a few seconds of processor.
       */
      const analyze = async (what: string) => {
        if (process.env.TABULA_LAB_ANALYZE !== '1' || !laptop.vm.running()) return;
        const r = await laptop.vm
          .ssh('root', 'systemd-analyze --no-pager; echo; systemd-analyze critical-chain --no-pager multi-user.target; echo; systemd-analyze blame --no-pager | head -40', { timeoutMs: 120_000 })
          .catch((err: Error) => ({ stdout: '', stderr: err.message }));
        fs.writeFileSync(path.join(laptopDir, `boot-analyze-${++analyses}.txt`), `${what}\n\n${r.stdout}${r.stderr}`);
      };
      const reboot = async (what: string) => {
        await analyze(`the boot before ${what}`);
        const ms = await laptop.reboot();
        await blessCheck(what);
        return ms;
      };
      /** What ostree and systemd-boot say about this boot: the booted deployment's version and the entry (efivarfs: 4 bytes of attributes, then UTF-16; read through a pipe, one read of the whole variable). */
      const booted = async () => {
        const out = await laptop.vm.run('root', 'test -e /run/ostree-booted && echo ostree-booted; ostree admin status; cat /sys/firmware/efi/efivars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f | tail -c +5 | tr -d "\\0"; echo; cat /proc/cmdline');
        const lines = out.split('\n');
        const star = lines.findIndex((l) => l.startsWith('* '));
        const version = star >= 0 ? /Version: (\S+)/.exec(lines.slice(star + 1, star + 3).join('\n'))?.[1] ?? null : null;
        return { ostreeBooted: lines[0] === 'ostree-booted', version, entry: lines.at(-3) ?? '', cmdline: lines.at(-2) ?? '', text: out };
      };
      let tPowerOn = 0;
      const up = await run.scenario('a', vm, async () => {
        const t0 = (tPowerOn = Date.now());
        await laptop.vm.start();
        const ms = await laptop.vm.waitForSsh();
        run.figure('first boot, power on to ssh', `${Math.round(ms / 1000)} s`);
        const s = await agentUp();
        if (s.image.version !== '1') throw new Error(`tabula status shows image ${s.image.version}, expected 1`);
        const active = (await laptop.vm.ssh(USER, 'systemctl --user is-active tabula-agent.service')).stdout.trim();
        if (active !== 'active') throw new Error(`tabula-agent.service is "${active}" in ${USER}'s systemd, expected active`);
        const b = await booted();
        if (!b.ostreeBooted || b.version !== '1' || !/\bostree=\/ostree\/boot\.\d\//.test(b.cmdline)) throw new Error(`not booted by ostree into version 1:\n${b.text}`);
        if (!/^tabula-ostree-.*\.conf$/.test(b.entry)) throw new Error(`systemd-boot did not start one of ostree's entries (LoaderEntrySelected "${b.entry}")`);
        return `power on to agent ${Math.round((Date.now() - t0) / 1000)} s; systemd-boot entry ${b.entry}`;
      });
      if (!up) {
        run.failRest('the ostree laptop did not boot (scenario a)');
        return;
      }

      await run.scenario('b', vm, async () => {
        const { status: s, backedUpAt } = await laptop.restoredHome(seeded);
        // On the host's clock (the guest's drifts under TCG): an upper bound, seen by polling every 2 s.
        run.figure('power on to "Backed up"', `${Math.round((backedUpAt - tPowerOn) / 1000)} s`);
        return `state ${s.backup.state}: ${s.backup.reason}`;
      });

      const homeFiles = async () => laptop.vm.run(USER, 'cd ~ && find . -path ./.cache -prune -o -type f -name "*.txt" -exec sha256sum {} + | sort');
      const onNas = (rel: string) => (fs.existsSync(path.join(nasHome, rel)) ? fs.readFileSync(path.join(nasHome, rel), 'utf8') : null);
      // (c) and (d) share one reboot: the queued backup and the staged image both cross it.
      let queued = false;
      if (run.wants('c')) {
        try {
          await laptop.vm.run(USER, 'mkdir -p ~/Documents && echo "edited on the laptop" > ~/Documents/edit.txt && tabula backup now', { timeoutMs: 600_000 });
          if (onNas('Documents/edit.txt') !== 'edited on the laptop\n') throw new Error(`the edit is not on the NAS after "Back up now": ${JSON.stringify(onNas('Documents/edit.txt'))}`);
          await nas.stop();
          await laptop.vm.ssh(USER, 'echo "written while the NAS was down" > ~/Documents/offline.txt && tabula backup now --no-wait', { timeoutMs: 120_000 });
          await waitFor(async () => {
            const st = await laptop.peek();
            return st.backup.state === 'offline' && st.backup.queuedChanges > 0 ? st : null;
          }, 600_000, 'with the NAS down, the backup never showed as queued (offline, changes waiting)');
          queued = true;
        } catch (err) {
          run.record('c', 'failed', (err as Error).message, laptop.vm);
        }
      }

      let staged: { served: number; idBefore: string; homeBefore: string } | null = null;
      // The machine's identity is what survives of /etc (tabula-identity, the dracut module).
      const identity = async () => laptop.vm.run('root', 'cat /etc/machine-id; cat /etc/ssh/ssh_host_ed25519_key.pub');
      if (run.wants('d')) {
        try {
          await offer('2');
          await laptop.vm.run(USER, 'mkdir -p ~/Documents && echo "written on image 1" > ~/Documents/note.txt');
          const sentBefore = server.bytesSent();
          const tPull = Date.now();
          const out = await laptop.vm.run(USER, 'tabula image pull --json', { timeoutMs: 900_000 });
          const s = JSON.parse(out) as AgentStatusJson['imageUpdate'];
          if (s.staged?.version !== '2') throw new Error(`after "tabula image pull", image ${s.staged?.version ?? 'none'} is staged (state ${s.state}: ${s.reason})`);
          const served = server.bytesSent() - sentBefore;
          run.figure('bytes pulled for image 2 (server sent)', `${served}`);
          run.figure('bytes pulled for image 2 (ostree says)', `${s.lastPullBytes}`);
          run.figure('tabula image pull of image 2 (check, download, verify, stage)', `${Math.round((Date.now() - tPull) / 1000)} s`);
          const pk = await laptop.vm.run('root', `journalctl -b --no-pager -o cat -t pkexec | grep -c "${USER}: Executing command \\[USER=root\\].*tabula-helper pull" || true`);
          if (Number(pk.trim()) < 1) throw new Error('no pkexec record of the agent running "tabula-helper pull" (check, then stage, in one run)');
          const adm = await laptop.vm.run('root', 'ostree admin status; systemctl is-active ostree-finalize-staged.service');
          if (!/\(staged\)/.test(adm) || !/^active$/m.test(adm)) throw new Error(`image 2 is not staged for ostree-finalize-staged:\n${adm}`);
          await laptop.vm.run('root', 'echo tampered > /etc/tabula-lab-root-edit && echo stray > /var/tabula-lab-stray && echo stray > /var/lib/tabula-lab-stray && echo kept > /var/log/journal/tabula-lab-kept');
          staged = { served, idBefore: await identity(), homeBefore: await homeFiles() };
        } catch (err) {
          run.record('d', 'failed', (err as Error).message, laptop.vm);
        }
      }

      let rebootMs = 0;
      let tReboot = 0;
      if (queued || staged) {
        tReboot = Date.now();
        rebootMs = await reboot(staged ? 'the update to 2' : '(c)\'s reboot');
        run.figure('full reboot (systemctl reboot) to ssh', `${Math.round(rebootMs / 1000)} s${staged ? ', into a staged image' : ''}`);
      }
      if (queued) {
        await run.scenario('c', vm, async () => {
          try {
            // Before the NAS is back: the request crossed the reboot (the person's state is in the home).
            await laptop.stillQueued(await agentUp());
            await nas!.start();
            const tBack = Date.now();
            await waitFor(async () => onNas('Documents/offline.txt') === 'written while the NAS was down\n' || null, 600_000, 'the queued backup did not run by itself once the NAS was back');
            const done = await waitFor(async () => {
              const s = await laptop.peek();
              return s.backup.state === 'idle' && s.backup.queuedChanges === 0 ? s : null;
            }, 300_000, 'the window never said the home is backed up after the queued backup ran');
            run.figure('reboot to "Backed up" (a backup queued offline, the NAS back once the agent answered)', `${Math.round((Date.now() - tReboot) / 1000)} s`);
            return `ran ${Math.round((Date.now() - tBack) / 1000)} s after the NAS came back: ${done.backup.reason}`;
          } finally {
            await nas!.start();
          }
        });
      }
      if (staged) {
        const before = staged;
        await run.scenario('d', vm, withDiag('d', async () => {
          const st = await agentAnswers();
          const b = await booted();
          if (st.image.version !== '2' || b.version !== '2') throw new Error(`after the reboot: tabula status shows ${st.image.version}, ostree booted ${b.version}; expected 2\n${b.text}`);
          const left = (await laptop.vm.run('root', 'cat /etc/tabula-lab-root-edit 2>/dev/null || true')).trim();
          if (left) throw new Error('the root edit in /etc survived the reboot');
          // /var: the image's again (its dpkg database back), but for what survives a boot.
          const v = await laptop.vm.run('root', 'ls /var/tabula-lab-stray /var/lib/tabula-lab-stray /var/log/journal/tabula-lab-kept /var/lib/dpkg/status 2>&1; true');
          if (/^\/var\/(lib\/)?tabula-lab-stray$/m.test(v)) throw new Error(`a stray file in /var survived the reboot:\n${v}`);
          if (!/^\/var\/log\/journal\/tabula-lab-kept$/m.test(v) || !/^\/var\/lib\/dpkg\/status$/m.test(v)) throw new Error(`/var is not the image's plus what survives a boot:\n${v}`);
          const idAfter = await identity();
          if (idAfter !== before.idBefore) throw new Error(`the machine's identity changed across the update:\nbefore ${before.idBefore}\nafter ${idAfter}`);
          const after = await homeFiles();
          if (after !== before.homeBefore || !after.includes('note.txt')) throw new Error(`the home changed across the update:\nbefore ${before.homeBefore}\nafter ${after}`);
          const doc = await laptop.vm.run('root', 'cat /usr/share/doc/tabula-lab-image-2');
          if (doc !== 'new in image 2\n') throw new Error('image 2 content is missing');
          return `${before.served} bytes served for the update; reboot ${Math.round(rebootMs / 1000)} s; entry ${b.entry}`;
        }));
      }

      // (e) rollback to 1 and back. Going back is an administrator's (polkit: auth_admin_keep): root
      // runs tabula-helper rollback, as the helpdesk would. On 1 the status offers 2 again, and the
      // way forward is the person's own "tabula image pull" (pkexec in the active session, no
      // password). Two reboots: no other scenario's boot can carry either ((g)'s reimage lays down a
      // pristine copy, not a way back; (f)'s fallback goes to what was booted when 3 was staged).
      // From here on the channel names 2 ((e)'s way back, (g)'s reimage), until (f) publishes 3.
      if (offered !== '2') await offer('2');
      await run.scenario('e', vm, withDiag('e', async () => {
        const from = (await laptop.peek()).image.version;
        if (from !== '2') throw new Error(`(e) starts on image 2 (scenario d); the laptop runs ${from}`);
        const lines = (await laptop.vm.run('root', '/usr/libexec/tabula/tabula-helper rollback', { timeoutMs: 300_000 })).trim().split('\n');
        const last = JSON.parse(lines.at(-1)!) as { result?: { deployments: { staged: { version: string } | null } } };
        if (last.result?.deployments.staged?.version !== '1') throw new Error(`tabula-helper rollback staged ${last.result?.deployments.staged?.version ?? 'nothing'}, expected 1: ${lines.at(-1)}`);
        const back = await reboot('the rollback to 1');
        await agentAnswers();
        const on1 = await waitFor(async () => {
          const st = await laptop.peek();
          return st.imageUpdate.state === 'idle' && /Version 2 is available \(running 1\)/.test(st.imageUpdate.reason) ? st : null;
        }, 300_000, 'after the rollback the status never said "Version 2 is available (running 1)"');
        const b1 = await booted();
        if (on1.image.version !== '1' || b1.version !== '1') throw new Error(`after the rollback and a reboot: tabula status shows ${on1.image.version}, ostree booted ${b1.version}; expected 1\n${b1.text}`);
        const s = JSON.parse(await laptop.vm.run(USER, 'tabula image pull --json', { timeoutMs: 900_000 })) as AgentStatusJson['imageUpdate'];
        if (s.staged?.version !== '2') throw new Error(`on 1, "tabula image pull" staged ${s.staged?.version ?? 'nothing'} (state ${s.state}: ${s.reason}), expected 2`);
        const pk = await laptop.vm.run('root', `journalctl -b --no-pager -o cat -t pkexec | grep -c "${USER}: Executing command \\[USER=root\\].*tabula-helper pull" || true`);
        if (Number(pk.trim()) < 1) throw new Error('no pkexec record of the agent running "tabula-helper pull" (check, then stage, in one run) on 1');
        const forward = await reboot('"tabula image pull" of 2 on 1');
        const st = await agentAnswers();
        const b2 = await booted();
        if (st.image.version !== '2' || b2.version !== '2') throw new Error(`after "tabula image pull" on 1 and a reboot: tabula status shows ${st.image.version}, ostree booted ${b2.version}; expected 2\n${b2.text}`);
        return `2 → 1 by tabula-helper rollback (reboot ${Math.round(back / 1000)} s; "${on1.imageUpdate.reason}") → 2 by tabula image pull (reboot ${Math.round(forward / 1000)} s)`;
      }));

      await run.scenario('g', vm, withDiag('g', async () => {
        // The helpdesk's key and folder, as an administrator's config layer.
        const helpdesk = { fleet: { url: `http://${COMMANDS_ADDR}/`, commandKeys: [fs.readFileSync(path.join(ctx.work, 'helpdesk.pub'), 'utf8').trim()], commandPollMinutes: 24 * 60, reimageCountdownSeconds: 5 } };
        await laptop.vm.run('root', 'mkdir -p /etc/tabula && umask 022 && cat > /etc/tabula/config.json', { input: JSON.stringify(helpdesk, null, 2) });
        await laptop.vm.run(USER, 'systemctl --user restart tabula-agent');
        await agentAnswers();
        const machineId = (await laptop.vm.run('root', 'cat /etc/machine-id')).trim();
        const order = () => execFileSync(process.execPath, [path.join(repo, 'bin/tabula-fleet.js'), 'command', 'reimage', '--machine', machineId, '--expires', '1h', '--key', path.join(ctx.work, 'helpdesk.key'), '--out', commandsDir], { encoding: 'utf8' });
        const poll = async () => JSON.parse((await laptop.vm.ssh(USER, 'tabula fleet poll --json', { timeoutMs: 300_000 })).stdout) as { outcome: string; message: string };
        // A file the storage does not have yet (backups paused), and root's edits a reimage must undo.
        await laptop.vm.run(USER, 'tabula backup pause && mkdir -p ~/Documents && echo "not on the NAS yet" > ~/Documents/unsynced.txt');
        await laptop.vm.run('root', 'echo tampered > /etc/tabula-lab-root-edit && mkdir -p /var/lib/stray && echo stray > /var/lib/stray/file');
        order();
        const refused = await poll();
        if (refused.outcome !== 'refused' || !/not on the storage yet/.test(refused.message)) throw new Error(`with an unsynced file the reimage command was not refused: ${JSON.stringify(refused)}`);
        if ((await laptop.vm.run('root', 'ls /var/lib/tabula/reset-on-boot 2>/dev/null || true')).trim()) throw new Error('a refused reimage left a reset staged');
        await laptop.vm.run(USER, 'tabula backup resume && tabula backup now', { timeoutMs: 300_000 });
        if (!fs.existsSync(path.join(nasHome, 'Documents/unsynced.txt'))) throw new Error('"Back up now" did not put the file on the NAS');
        const homeBefore = await homeFiles();
        // The refused command waits and runs by itself after the backup (at most once); where the
        // agent spent it instead, the helpdesk sends a new one.
        const pending = async () => ((await laptop.peek()).imageUpdate as { reimagePending?: boolean }).reimagePending ? true : null;
        const ranByItself = await waitFor(pending, 120_000, '').then(() => true, () => false);
        if (!ranByItself) {
          const again = await poll();
          if (again.outcome !== 'done') {
            order();
            const ran = await poll();
            if (ran.outcome !== 'done') throw new Error(`after the backup the reimage command did not run: ${JSON.stringify(ran)}`);
          }
          await waitFor(pending, 900_000, 'the reset was never prepared');
        }
        const pk = await laptop.vm.run('root', `journalctl -b --no-pager -o cat -t pkexec | grep -c "${USER}: Executing command \\[USER=root\\].*tabula-helper reimage-signed" || true`);
        if (Number(pk.trim()) < 1) throw new Error('no pkexec record of the agent running "tabula-helper reimage-signed"');
        const t0 = Date.now();
        await reboot('the reimage');
        run.figure('reimage: reboot to a pristine laptop', `${Math.round((Date.now() - t0) / 1000)} s`);
        const after = await agentAnswers();
        const b = await booted();
        if (after.image.version !== '2' || b.version !== '2') throw new Error(`after the reset the laptop runs ${after.image.version} (ostree: ${b.version}), expected 2 (the channel's version)`);
        const leftovers = (await laptop.vm.run('root', 'ls /etc/tabula-lab-root-edit /etc/tabula/config.json /var/lib/stray/file /var/lib/tabula/reset-on-boot 2>/dev/null || true')).trim();
        if (leftovers) throw new Error(`not pristine after the reset: ${leftovers}`);
        const homeAfter = await homeFiles();
        if (homeAfter !== homeBefore || !homeAfter.includes('unsynced.txt')) throw new Error(`the home changed across the reset:\nbefore ${homeBefore}\nafter ${homeAfter}`);
        return `refused: "${refused.message.slice(0, 80)}…"; ran ${ranByItself ? 'by itself' : 'when polled'} after the backup; reboot ${Math.round((Date.now() - t0) / 1000)} s`;
      }));

      await run.scenario('f', vm, withDiag('f', async () => {
        const broken = await offer('3');
        // One try of 3 (a kernel panic and a restart), then systemd-boot starts 2, as on the rsync-tree
        // laptop. tabula-ostree-esp gives a deployment new to the ESP the tries in the running system's
        // /etc/kernel/tries: the images' 2 keep a TCG crash from failing a good image, and 3 needs none
        // to spare. This boot's /etc only (fresh from the image at the next boot).
        await laptop.vm.run('root', 'echo 1 > /etc/kernel/tries');
        await analyze('the boot before the broken image 3');
        const { status: after, rebootMs } = await laptop.brokenImageFallsBack('3', '2');
        await analyze('the fallback to 2');
        run.figure('broken image: reboot to back on the previous one', `${Math.round(rebootMs / 1000)} s`);
        const b = await booted();
        if (b.version !== '2') throw new Error(`ostree says ${b.version} runs, expected 2\n${b.text}`);
        // 3's deployment is gone and so is its entry on the ESP (ostree's staging had already dropped
        // the older rollback: it keeps the booted deployment and the new one).
        const entries = (await laptop.vm.run('root', 'ls /efi/loader/entries')).trim().split('\n');
        const good = (await fleet.ready('2')).commit;
        if (entries.some((e) => e.includes(broken)) || !entries.some((e) => e.includes(good))) throw new Error(`the ESP should hold 2's entry and none of 3's: ${entries.join(' ')}`);
        return `"${after.imageUpdate.reason}"; ESP entries: ${entries.join(' ')}`;
      }));
    } finally {
      lab?.stop();
      await vm?.stop();
      await server?.close();
      await commands?.close();
      await nas?.dispose();
    }
  },
};
