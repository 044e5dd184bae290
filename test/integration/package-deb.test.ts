// The Debian package a fleet admin puts in an image: built with `scripts/package-deb.mjs` (what
// `npm run package:deb` runs after the build), checked with lintian, unpacked and run, and its
// maintainer scripts run for install, upgrade and removal. Installing it into a booted image is the
// lab's job (test/lab).
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve(__dirname, '..', '..');
const version = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')).version as string;
let dir: string;
let deb: string;
let unpacked: string;

const sh = (cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}) =>
  spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, ...opts });
/** For the long runs (the build, lintian): async, so the test worker keeps answering vitest meanwhile. */
const runAsync = (cmd: string, args: string[]) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) =>
    execFile(cmd, args, { cwd: repo, encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    ),
  );
const buildDeb = async (args: string[]) => {
  const r = await runAsync(process.execPath, [path.join(repo, 'scripts/package-deb.mjs'), ...args]);
  if (r.status !== 0) throw new Error(`package-deb.mjs failed:\n${r.stderr}`);
  return r.stdout.trim().split('\n').pop()!;
};

beforeAll(async () => {
  if (!fs.existsSync(path.join(repo, 'build/main/cli.js')) || !fs.existsSync(path.join(repo, 'build/renderer/index.html'))) {
    await runAsync('npm', ['run', '-s', 'build']);
  }
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-deb-test-'));
  deb = await buildDeb(['--out', dir]);
  unpacked = path.join(dir, 'unpacked');
  execFileSync('dpkg-deb', ['-x', deb, unpacked]);
}, 120_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** `dpkg-deb -c` as {path: "mode owner/group [-> target]"}. */
function contents(): Map<string, { mode: string; owner: string; target?: string }> {
  const map = new Map<string, { mode: string; owner: string; target?: string }>();
  for (const line of execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' }).trim().split('\n')) {
    const m = /^(\S+) (\S+)\s+\d+ \S+ \S+ \.(\/\S*?)\/?(?: -> (\S+))?$/.exec(line);
    if (m) map.set(m[3]!, { mode: m[1]!, owner: m[2]!, target: m[4] });
  }
  return map;
}
const field = (name: string) => execFileSync('dpkg-deb', ['-f', deb, name], { encoding: 'utf8' }).trim();

describe('npm run package:deb', () => {
  it('builds tabula_<version>_<arch>.deb that lintian passes without errors or warnings', async () => {
    const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
    expect(path.basename(deb)).toBe(`tabula_${version}_${arch}.deb`);
    const lintian = await runAsync('lintian', ['--fail-on', 'error,warning', '--no-tag-display-limit', deb]);
    // The tags lintian printed are the message when it fails.
    expect({ status: lintian.status, tags: lintian.stdout.split('\n').filter((l) => /^[EW]: /.test(l)) }).toEqual({ status: 0, tags: [] });
  }, 120_000);

  it('holds the agent, CLI, helper, policy, user service, autostart entries, man pages and boot files', () => {
    const files = contents();
    const exe = (p: string) => expect(files.get(p), p).toMatchObject({ mode: '-rwxr-xr-x', owner: 'root/root' });
    const plain = (p: string) => expect(files.get(p), p).toMatchObject({ mode: '-rw-r--r--', owner: 'root/root' });
    exe('/usr/bin/tabula');
    exe('/usr/bin/tabula-fleet');
    exe('/usr/libexec/tabula/tabula-helper');
    for (const f of ['cli.js', 'helper.js', 'fleet.js', 'shell.js', 'preload.js']) plain(`/usr/lib/tabula/build/main/${f}`);
    plain('/usr/lib/tabula/build/renderer/index.html');
    plain('/usr/lib/tabula/node_modules/keytar/build/Release/keytar.node');
    plain('/usr/share/polkit-1/actions/org.tabula.helper.policy');
    plain('/usr/lib/systemd/user/tabula-agent.service');
    // Enabled for every user, in /usr: it survives the stateless /etc reset and needs no postinst.
    expect(files.get('/usr/lib/systemd/user/default.target.wants/tabula-agent.service')).toMatchObject({ mode: 'lrwxrwxrwx', target: '../tabula-agent.service' });
    plain('/etc/xdg/autostart/tabula.desktop');
    plain('/etc/xdg/autostart/tabula-prefs.desktop');
    plain('/usr/share/man/man1/tabula.1.gz');
    plain('/usr/share/man/man1/tabula-fleet.1.gz');
    plain('/usr/share/doc/tabula/copyright');
    // Nothing from a developer's checkout: no source maps, benchmarks, tests or TypeScript.
    expect([...files.keys()].filter((p) => /\.(map|ts)$|bench|\/test\//.test(p))).toEqual([]);
    // Whatever the lab puts under assets/boot is installed at the same path under /.
    const bootDir = path.join(repo, 'assets/boot');
    const bootFiles = fs.existsSync(bootDir) ? (fs.readdirSync(bootDir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(bootDir, f)).isFile() && !/^README/i.test(f)) : [];
    for (const f of bootFiles) expect(files.has(`/${f}`), `assets/boot/${f} installed as /${f}`).toBe(true);

    expect(execFileSync('dpkg-deb', ['-f', deb, 'Package', 'Version'], { encoding: 'utf8' })).toBe(`Package: tabula\nVersion: ${version}\n`);
    const depends = field('Depends').split(/,\s*/);
    expect(depends).toEqual(expect.arrayContaining(['nodejs (>= 20)', 'rsync', 'openssh-client', 'pkexec', 'polkitd']));
    // busybox: cp, mv and tr for the rsync-tree initramfs hook; recommended, not required (an ostree
    // image boots through dracut and ostree-prepare-root instead); its initramfs conf hook requires it.
    expect(field('Recommends').split(/,\s*/)).toContain('busybox');
    expect(depends.some((d) => d.startsWith('libsecret-1-0'))).toBe(true); // keytar's binding, from dpkg-shlibdeps
    expect(execFileSync('dpkg-deb', ['-I', deb, 'conffiles'], { encoding: 'utf8' }).trim().split('\n').sort()).toEqual(['/etc/xdg/autostart/tabula-prefs.desktop', '/etc/xdg/autostart/tabula.desktop']);
  });

  it('runs from the unpacked package: CLI, fleet tool, helper and keytar load without the checkout', () => {
    const tabula = path.join(unpacked, 'usr/bin/tabula');
    const runtime = fs.mkdtempSync(path.join(dir, 'run-'));
    fs.chmodSync(runtime, 0o700);
    const env = { ...process.env, HOME: path.join(dir, 'home'), XDG_RUNTIME_DIR: runtime, XDG_CONFIG_HOME: path.join(dir, 'cfg'), XDG_STATE_HOME: path.join(dir, 'state') };
    expect(sh(tabula, ['--version'], { env }).stdout.trim()).toBe(`tabula ${version}`);
    const status = sh(tabula, ['status'], { env });
    expect(status.status).toBe(3);
    expect(status.stderr).toMatch(/Tabula is not running/);

    const keyBase = path.join(dir, 'fleet');
    const fleet = sh(path.join(unpacked, 'usr/bin/tabula-fleet'), ['keygen', '--out', keyBase]);
    expect(fleet.status, fleet.stderr).toBe(0);
    expect(fs.readFileSync(`${keyBase}.pub`, 'utf8')).toMatch(/\S/);

    // The helper refuses what is not one of its verbs (it got as far as helper.js to say so).
    const helper = sh(path.join(unpacked, 'usr/libexec/tabula/tabula-helper'), ['rm', '-rf', '/']);
    expect(helper.status).not.toBe(0);
    expect(helper.stderr + helper.stdout).toMatch(/verb|usage/i);

    const keytar = sh('node', ['-e', `const k = require(${JSON.stringify(path.join(unpacked, 'usr/lib/tabula/node_modules/keytar'))}); console.log(typeof k.getPassword)`]);
    expect(keytar.stdout.trim(), keytar.stderr).toBe('function');
  });

  it('ships a user unit that restarts the agent on failure and entries that validate', () => {
    const unit = fs.readFileSync(path.join(unpacked, 'usr/lib/systemd/user/tabula-agent.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/tabula agent$/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    // A person's service: not started for root's or a system user's manager.
    expect(unit).toMatch(/^ConditionUser=!@system$/m);
    // What `tabula agent` exits with when its runtime folder or socket is unsafe (agent-service.test.ts).
    expect(unit).toMatch(/^RestartPreventExitStatus=78$/m);
    // Enabled by the package's link (asserted above), so "static", as Debian's ssh-agent.service.
    expect(unit).not.toMatch(/^\[Install\]/m);
    // No NoNewPrivileges: the agent reaches tabula-helper through pkexec, which is setuid.
    expect(unit).not.toMatch(/NoNewPrivileges|PrivateUsers/);
    for (const entry of ['tabula.desktop', 'tabula-prefs.desktop']) {
      const r = sh('desktop-file-validate', [path.join(unpacked, 'etc/xdg/autostart', entry)]);
      expect(r.stdout + r.stderr, entry).toBe('');
    }
  });

  it('documents every command of `tabula --help` in tabula(1)', () => {
    const helpRun = sh(path.join(unpacked, 'usr/bin/tabula'), ['--help']);
    const help = helpRun.stdout + helpRun.stderr;
    const commands = new Set([...help.matchAll(/^ {2}tabula ((?:[a-z]+ ?)+)/gm)].map((m) => m[1]!.trim()));
    expect(commands.size).toBeGreaterThan(15);
    const page = sh('man', ['--warnings', '-l', path.join(unpacked, 'usr/share/man/man1/tabula.1.gz')], { env: { ...process.env, LC_ALL: 'C', MANWIDTH: '200' } });
    expect(page.stderr).toBe('');
    // man writes plain text (no overstrike) when its output is not a terminal.
    expect([...commands].filter((c) => !page.stdout.includes(`tabula ${c}`))).toEqual([]);
  });
});

describe('where the Electron runtime ships in the package', () => {
  it('the agent and CLI run on it as Node (ELECTRON_RUN_AS_NODE), the tray as Electron', async () => {
    // A fake Electron (the real runtime cannot be downloaded here): it records how it was started
    // and runs the script on Node when asked to be Node, as Electron does.
    const fake = path.join(dir, 'fake-electron');
    fs.mkdirSync(fake);
    const log = path.join(dir, 'fake-electron.log');
    fs.writeFileSync(path.join(fake, 'electron'), `#!/bin/sh\necho "ELECTRON_RUN_AS_NODE=\${ELECTRON_RUN_AS_NODE:-unset} $*" >> ${log}\n[ "$ELECTRON_RUN_AS_NODE" = 1 ] && exec node "$@"\nexit 0\n`, { mode: 0o755 });
    const out = path.join(dir, 'with-electron');
    const built = await buildDeb(['--out', out, '--electron', fake]);
    const tree = path.join(out, 'unpacked');
    execFileSync('dpkg-deb', ['-x', built, tree]);
    const app = path.join(tree, 'usr/lib/tabula');

    expect(sh(path.join(tree, 'usr/bin/tabula'), ['--version']).stdout.trim()).toBe(`tabula ${version}`);
    const tray = sh(path.join(tree, 'usr/bin/tabula'), ['tray']);
    expect(tray.status, tray.stderr).toBe(0);
    expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toEqual([
      `ELECTRON_RUN_AS_NODE=1 ${app}/bin/tabula.js --version`,
      `ELECTRON_RUN_AS_NODE=1 ${app}/bin/tabula.js tray`,
      // The tray itself is Electron proper, never Node.
      `ELECTRON_RUN_AS_NODE=unset ${app}/build/main/shell.js${process.getuid?.() === 0 ? ' --no-sandbox' : ''}`,
    ]);
    // The login entry starts the tray only where the runtime is installed.
    expect(fs.readFileSync(path.join(tree, 'etc/xdg/autostart/tabula.desktop'), 'utf8')).toContain('TryExec=/usr/lib/tabula/electron/electron\n');
  }, 60_000);
});

describe('maintainer scripts', () => {
  /**
   * Runs a maintainer script in a private mount namespace where /run/systemd/system exists (a booted
   * systemd) or not (an image build), with a recording stand-in for deb-systemd-invoke (a fake: no
   * user managers run here).
   */
  function runScript(script: 'postinst' | 'prerm', args: string[], booted: boolean) {
    const bin = fs.mkdtempSync(path.join(dir, 'bin-'));
    const log = path.join(bin, 'calls');
    fs.writeFileSync(path.join(bin, 'deb-systemd-invoke'), `#!/bin/sh\necho "$*" >> ${log}\n`, { mode: 0o755 });
    const file = path.join(dir, `${script}-script`);
    fs.writeFileSync(file, execFileSync('dpkg-deb', ['-I', deb, script]), { mode: 0o755 });
    const prepare = booted ? 'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && ' : 'mount -t tmpfs tmpfs /run && ';
    const r = sh('unshare', ['--mount', 'sh', '-c', `${prepare}exec "$@"`, 'sh', file, ...args], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    return { status: r.status, stderr: r.stderr, calls: fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [] };
  }

  it('restarts running agents on upgrade, leaves sessions alone on a fresh install', () => {
    expect(runScript('postinst', ['configure', '0.0.9'], true)).toEqual({ status: 0, stderr: '', calls: ['--user restart tabula-agent.service'] });
    expect(runScript('postinst', ['configure', ''], true)).toEqual({ status: 0, stderr: '', calls: [] });
  });

  it('stops running agents on removal, not on upgrade', () => {
    expect(runScript('prerm', ['remove'], true)).toEqual({ status: 0, stderr: '', calls: ['--user stop tabula-agent.service'] });
    expect(runScript('prerm', ['upgrade', '0.2.0'], true)).toEqual({ status: 0, stderr: '', calls: [] });
  });

  it('has the initramfs rebuilt with its boot script when installed or upgraded (dpkg trigger)', () => {
    expect(execFileSync('dpkg-deb', ['-I', deb, 'triggers'], { encoding: 'utf8' })).toBe('activate-noawait update-initramfs\n');
    // busybox is only recommended (ostree images use dracut), so initramfs-tools is told to require
    // it: mkinitramfs sources conf-hooks.d after the admin's config and stops when BUSYBOX=y finds none.
    const confHook = path.join(unpacked, 'usr/share/initramfs-tools/conf-hooks.d/tabula');
    expect(execFileSync('sh', ['-c', `BUSYBOX=auto; . "${confHook}"; echo "$BUSYBOX"`], { encoding: 'utf8' })).toBe('y\n');
  });

  it('does nothing in an image build (no running systemd)', () => {
    expect(runScript('postinst', ['configure', '0.0.9'], false)).toEqual({ status: 0, stderr: '', calls: [] });
    expect(runScript('prerm', ['remove'], false)).toEqual({ status: 0, stderr: '', calls: [] });
  });
});
