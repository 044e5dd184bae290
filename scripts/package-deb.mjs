// `npm run package:deb`: builds dist/tabula_<version>_<arch>.deb with Debian's own tools (dpkg-deb,
// dpkg-shlibdeps), from the already built bundle (npm run build). No debhelper: the package is a
// staged tree plus a control file, which keeps every installed path visible in this one script.
//
// Installed layout (the repository's layout under /usr/lib/tabula, so every path the code derives
// from __dirname holds unchanged):
//   /usr/lib/tabula/{bin,build/main,build/renderer,assets/icons/png,node_modules/keytar,package.json}
//   /usr/bin/tabula, /usr/bin/tabula-fleet, /usr/libexec/tabula/tabula-helper   (launchers)
//   /usr/lib/systemd/user/tabula-agent.service, enabled for every user by a default.target.wants link
//   /etc/xdg/autostart/tabula.desktop (tray), tabula-prefs.desktop (preferences at login)
//   /usr/share/polkit-1/actions/org.tabula.helper.policy, man pages, icons, doc
//   assets/boot/** → the same path under / (assets/boot mirrors the installed tree; see below)
//
// Options: --out DIR (default dist), --electron DIR (an Electron dist folder to ship as
// /usr/lib/tabula/electron; default node_modules/electron/dist when it was downloaded, and none here).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const outDir = path.resolve(option('--out', path.join(repo, 'dist')));
const electronDir = option('--electron', path.join(repo, 'node_modules/electron/dist'));

const fail = (message) => {
  console.error(`package:deb: ${message}`);
  process.exit(1);
};
const run = (cmd, argv, opts = {}) => execFileSync(cmd, argv, { encoding: 'utf8', ...opts });

const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
const version = pkg.version;
if (!/^\d+\.\d+\.\d+$/.test(version)) fail(`package.json version "${version}" is not x.y.z.`);
for (const tool of ['dpkg-deb', 'dpkg-shlibdeps', 'strip']) {
  try {
    run('sh', ['-c', `command -v ${tool}`]);
  } catch {
    fail(`${tool} is missing: apt-get install dpkg-dev binutils (or run .ci/setup).`);
  }
}
const arch = run('dpkg', ['--print-architecture']).trim();
const mainFiles = ['cli.js', 'sync.js', 'sync-client.js', 'sync-zod.js', 'helper.js', 'fleet.js', 'shell.js', 'preload.js'];
for (const f of [...mainFiles.map((f) => `build/main/${f}`), 'build/renderer/index.html', 'node_modules/keytar/build/Release/keytar.node']) {
  if (!fs.existsSync(path.join(repo, f))) fail(`${f} is missing: run \`npm run build\` (and npm install) first.`);
}

// Reproducible: every timestamp is the last commit's (or SOURCE_DATE_EPOCH).
const epoch = Number(process.env.SOURCE_DATE_EPOCH || run('git', ['-C', repo, 'log', '-1', '--format=%ct']).trim());

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-deb-'));
const root = path.join(work, 'root');
const app = path.join(root, 'usr/lib/tabula');

/** Copies a file into the staged tree with the mode a Debian package wants (0755 or 0644). */
function install(from, to, { executable = false } = {}) {
  const dest = path.join(root, to);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.copyFileSync(path.join(repo, from), dest);
  fs.chmodSync(dest, executable ? 0o755 : 0o644);
}
function installText(to, text, { executable = false } = {}) {
  const dest = path.join(root, to);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.writeFileSync(dest, text);
  fs.chmodSync(dest, executable ? 0o755 : 0o644);
}
function installTree(from, to, filter = () => true) {
  for (const entry of fs.readdirSync(path.join(repo, from), { withFileTypes: true })) {
    const rel = path.join(from, entry.name);
    if (!filter(rel, entry)) continue;
    if (entry.isDirectory()) installTree(rel, path.join(to, entry.name), filter);
    else if (entry.isFile()) install(rel, path.join(to, entry.name), { executable: (fs.statSync(path.join(repo, rel)).mode & 0o111) !== 0 });
    else fail(`${rel}: only regular files and folders can be packaged.`);
  }
}
const gzip = (to, text) => {
  const dest = path.join(root, to);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.writeFileSync(dest, zlib.gzipSync(text, { level: 9 }));
  fs.chmodSync(dest, 0o644);
};

try {
  // The application: bundles (no source maps, no benchmarks), the window, icons, and keytar.
  for (const f of mainFiles) install(`build/main/${f}`, `usr/lib/tabula/build/main/${f}`);
  installTree('build/renderer', 'usr/lib/tabula/build/renderer', (rel) => !rel.endsWith('.map'));
  // The checkout's entry points, which load the bundles relative to themselves.
  // Not executable here (the launchers in /usr/bin run them), so without their #! line.
  for (const f of ['tabula.js', 'tabula-fleet.js', 'tabula-helper.js']) {
    installText(`usr/lib/tabula/bin/${f}`, fs.readFileSync(path.join(repo, 'bin', f), 'utf8').replace(/^#!.*\n/, ''));
  }
  installTree('assets/icons/png', 'usr/lib/tabula/assets/icons/png');
  installText('usr/lib/tabula/package.json', JSON.stringify({ name: pkg.name, version, private: true, main: 'build/main/shell.js' }, null, 2) + '\n');
  // keytar talks to the Secret Service (the keyring). Built from source against N-API, so the same
  // binary loads in Debian's nodejs and in Electron.
  install('node_modules/keytar/package.json', 'usr/lib/tabula/node_modules/keytar/package.json');
  installTree('node_modules/keytar/lib', 'usr/lib/tabula/node_modules/keytar/lib');
  install('node_modules/keytar/build/Release/keytar.node', 'usr/lib/tabula/node_modules/keytar/build/Release/keytar.node');
  run('strip', ['--strip-unneeded', '--remove-section=.comment', '--remove-section=.note', path.join(app, 'node_modules/keytar/build/Release/keytar.node')]);
  fs.chmodSync(path.join(app, 'node_modules/keytar/build/Release/keytar.node'), 0o644);
  if (fs.existsSync(path.join(electronDir, 'electron'))) {
    // Where Electron could be downloaded: the tray runs on it, and so does the agent (as Node).
    const dest = path.join(app, 'electron');
    fs.cpSync(electronDir, dest, { recursive: true, verbatimSymlinks: true });
  }

  // Launchers. Relative to their own place, so an unpacked package (dpkg-deb -x) runs as installed.
  installText(
    'usr/bin/tabula',
    `#!/bin/sh
# Tabula's agent and command line. Runs on the Electron runtime shipped with Tabula (as plain Node)
# where there is one, else on Debian's nodejs.
app="$(readlink -f "$(dirname "$(readlink -f "$0")")/../lib/tabula")"
if [ -x "$app/electron/electron" ]; then
	ELECTRON_RUN_AS_NODE=1 exec "$app/electron/electron" "$app/bin/tabula.js" "$@"
fi
exec node "$app/bin/tabula.js" "$@"
`,
    { executable: true },
  );
  installText(
    'usr/bin/tabula-fleet',
    `#!/bin/sh
# Publishes images, policies and signed commands for a Tabula fleet.
app="$(readlink -f "$(dirname "$(readlink -f "$0")")/../lib/tabula")"
exec node "$app/bin/tabula-fleet.js" "$@"
`,
    { executable: true },
  );
  // The root helper always runs on Debian's nodejs at its absolute path: pkexec gives it a clean
  // environment, and nothing of the user's (PATH, NODE_OPTIONS) may choose what runs as root.
  installText(
    'usr/libexec/tabula/tabula-helper',
    `#!/bin/sh
# tabula-helper: the only part of Tabula that runs as root, reached through pkexec (see
# /usr/share/polkit-1/actions/org.tabula.helper.policy). A closed set of verbs; no paths from the caller.
app="$(readlink -f "$(dirname "$(readlink -f "$0")")/../../lib/tabula")"
exec env -u NODE_OPTIONS -u NODE_PATH /usr/bin/node "$app/bin/tabula-helper.js" "$@"
`,
    { executable: true },
  );

  // The agent as every user's service, and the two login entries.
  install('assets/systemd/tabula-agent.service', 'usr/lib/systemd/user/tabula-agent.service');
  fs.mkdirSync(path.join(root, 'usr/lib/systemd/user/default.target.wants'), { recursive: true });
  fs.symlinkSync('../tabula-agent.service', path.join(root, 'usr/lib/systemd/user/default.target.wants/tabula-agent.service'));
  install('assets/autostart/tabula.desktop', 'etc/xdg/autostart/tabula.desktop');
  install('assets/autostart/tabula-prefs.desktop', 'etc/xdg/autostart/tabula-prefs.desktop');
  install('assets/polkit/org.tabula.helper.policy', 'usr/share/polkit-1/actions/org.tabula.helper.policy');
  for (const size of [64, 128, 256, 512]) install(`assets/icons/png/tabula-${size}.png`, `usr/share/icons/hicolor/${size}x${size}/apps/tabula.png`);
  install('assets/icons/tabula.svg', 'usr/share/icons/hicolor/scalable/apps/tabula.svg');
  for (const page of ['tabula.1', 'tabula-fleet.1']) gzip(`usr/share/man/man1/${page}.gz`, fs.readFileSync(path.join(repo, 'assets/man', page)));

  // Boot integration (initramfs hook, …): assets/boot mirrors the installed tree, so
  // assets/boot/usr/share/initramfs-tools/hooks/tabula is installed as
  // /usr/share/initramfs-tools/hooks/tabula, executable if it is executable in the checkout.
  // README files explain the folder and are not installed.
  if (fs.existsSync(path.join(repo, 'assets/boot'))) {
    installTree('assets/boot', '', (rel, entry) => {
      const inside = path.relative('assets/boot', rel);
      if (!inside.includes('/') && entry.isFile() && /^README/i.test(entry.name)) return false;
      if (!/^(usr|etc)(\/|$)/.test(inside)) fail(`${rel}: assets/boot mirrors the installed tree; put it under assets/boot/usr/ or assets/boot/etc/.`);
      return true;
    });
  }

  // Documentation Debian asks for.
  install('packaging/deb/copyright', 'usr/share/doc/tabula/copyright');
  const date = run('date', ['-R', '-u', '-d', `@${epoch}`]).trim();
  gzip('usr/share/doc/tabula/changelog.gz', `tabula (${version}) unstable; urgency=medium\n\n  * Release ${version}; see the project's git history.\n\n -- Tabula team <tabula@example.org>  ${date}\n`);
  install('packaging/deb/lintian-overrides', 'usr/share/lintian/overrides/tabula');

  // Control area.
  const control = path.join(root, 'DEBIAN');
  fs.mkdirSync(control, { mode: 0o755 });
  const etcFiles = listFiles(root).filter((f) => f.startsWith('etc/'));
  if (etcFiles.length) fs.writeFileSync(path.join(control, 'conffiles'), etcFiles.map((f) => `/${f}\n`).join(''));
  for (const script of ['postinst', 'prerm']) {
    fs.copyFileSync(path.join(repo, 'packaging/deb', script), path.join(control, script));
    fs.chmodSync(path.join(control, script), 0o755);
  }
  // The initramfs holds Tabula's boot script: installing or upgrading the package rebuilds it (dpkg trigger).
  fs.writeFileSync(path.join(control, 'triggers'), fs.readFileSync(path.join(repo, 'packaging/deb/triggers'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).join('\n') + '\n', { mode: 0o644 });
  fs.writeFileSync(
    path.join(control, 'md5sums'),
    listFiles(root)
      .filter((f) => !f.startsWith('DEBIAN/') && fs.lstatSync(path.join(root, f)).isFile())
      .map((f) => `${run('md5sum', [path.join(root, f)]).split(' ')[0]}  ${f}\n`)
      .join(''),
  );
  fs.writeFileSync(
    path.join(control, 'control'),
    [
      'Package: tabula',
      `Version: ${version}`,
      `Architecture: ${arch}`,
      'Maintainer: Tabula team <tabula@example.org>',
      `Installed-Size: ${installedSize(root)}`,
      `Depends: nodejs (>= 20), rsync, openssh-client, pkexec, polkitd, ${sharedLibraryDepends(path.join(app, 'node_modules/keytar/build/Release/keytar.node'))}`,
      'Recommends: busybox, dbus-user-session, gnome-keyring, network-manager, cups-client, x11-xserver-utils, inotify-tools',
      'Suggests: ostree',
      'Section: admin',
      'Priority: optional',
      'Description: tray app and agent for stateless Linux laptop fleets',
      ' Tabula shows which OS image a laptop runs and whether the home is safely on',
      ' the network storage. Its agent runs as every user\'s systemd service: it',
      ' keeps the home in sync both ways without losing a change (queued while',
      ' offline), stages signed OS image updates through a polkit-guarded helper,',
      ' applies network, printer and display preferences without root, and lets',
      ' the helpdesk reimage a laptop safely.',
      '',
    ].join('\n'),
  );

  // Every folder 0755, then the archive with root as the owner of everything, stamped with the epoch.
  for (const f of listFiles(root, true)) {
    const full = path.join(root, f);
    const st = fs.lstatSync(full);
    if (st.isDirectory()) fs.chmodSync(full, 0o755);
    if (!st.isSymbolicLink()) fs.utimesSync(full, epoch, epoch);
  }
  fs.mkdirSync(outDir, { recursive: true });
  const deb = path.join(outDir, `tabula_${version}_${arch}.deb`);
  run('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', root, deb], { env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) }, stdio: ['ignore', 'ignore', 'inherit'] });
  console.log(deb);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

function listFiles(dir, withDirs = false, prefix = '') {
  const out = [];
  for (const entry of fs.readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (withDirs) out.push(rel);
      out.push(...listFiles(dir, withDirs, rel));
    } else out.push(rel);
  }
  return out.sort();
}

/** Installed-Size as dpkg-gencontrol counts it: KiB per file, rounded up, and one per folder or link. */
function installedSize(dir) {
  let kib = 0;
  for (const f of listFiles(dir, true)) {
    if (f.startsWith('DEBIAN')) continue;
    const st = fs.lstatSync(path.join(dir, f));
    kib += st.isFile() ? Math.ceil(st.size / 1024) : 1;
  }
  return kib;
}

/** The libraries keytar's binding links against, as Debian names them (dpkg-shlibdeps). */
function sharedLibraryDepends(binary) {
  const scratch = path.join(work, 'shlibs');
  fs.mkdirSync(path.join(scratch, 'debian'), { recursive: true });
  fs.writeFileSync(path.join(scratch, 'debian/control'), 'Source: tabula\n\nPackage: tabula\nArchitecture: any\n');
  const out = run('dpkg-shlibdeps', ['-O', `-e${binary}`], { cwd: scratch, stdio: ['ignore', 'pipe', 'pipe'] });
  const m = /^shlibs:Depends=(.*)$/m.exec(out);
  if (!m) fail(`dpkg-shlibdeps gave no dependencies for ${binary}.`);
  return m[1].trim();
}
