// `npm run bench:image`: a 20,000-file tree where 1% of the files change between two versions.
// Tabula's update against the plain tools, in one run, as ratios:
//   rsync-tree over a real sshd: bytes vs the changed content and vs a full copy; time vs a direct
//   `rsync -a --link-dest` into a fresh directory (the same A/B job without the checks).
//   ostree over HTTP on 127.0.0.1: bytes and time of Tabula's stage (pull + deploy) vs a direct
//   `ostree pull` + `ostree admin deploy` into a twin sysroot.
// Targets: bytes ≤ 1.1× the changed content, time ≤ 1.1× the direct tool. Trees are built once and
// reused (creating many files is slow here, see PERF-NOTES) in $TABULA_BENCH_DIR or /tmp.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { publishOstree, publishRsyncTree } from '../src-main/fleet-publish';
import { generateKeyPair } from '../src-main/core/signing';
import { createOstreeBackend } from '../src-main/core/image/ostree';
import { switchSymlink } from '../src-main/core/image/deployments-dir';
import { createRsyncTreeBackend } from '../src-main/core/image/rsync-tree';
import { createImageFleet, fakeBootloaderBoot, startCountingHttpServer } from '../test/fixtures/image-fleet';
import { startSshServer } from '../test/fixtures/sshd';

// The HTTP server runs in this process: anything that talks to it must not block the event loop.
const run = promisify(execFile);
const FILES = 20_000;
const CHANGED = FILES / 100;
const cacheDir = path.join(process.env.TABULA_BENCH_DIR ?? os.tmpdir(), 'tabula-bench-image');

/** Deterministic pseudo-random bytes (incompressible, like binaries) without a slow RNG per file. */
function bytesFor(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = crypto.createHash('sha256').update(seed).digest();
  for (let o = 0; o < size; o += 32) {
    block.copy(out, o);
    block = crypto.createHash('sha256').update(block).digest();
  }
  return out;
}

function buildTrees(): { v1: string; v2: string; changedBytes: number } {
  const v1 = path.join(cacheDir, 'v1');
  const v2 = path.join(cacheDir, 'v2');
  const stamp = path.join(cacheDir, 'ready.json');
  if (fs.existsSync(stamp)) return { v1, v2, ...JSON.parse(fs.readFileSync(stamp, 'utf8')) };
  fs.rmSync(cacheDir, { recursive: true, force: true });
  const when = new Date('2026-01-01T00:00:00Z');
  for (const [dir, version] of [[v1, '1.0'], [v2, '2.0']] as const) {
    fs.mkdirSync(path.join(dir, 'usr/lib/modules/6.1.0-bench'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'usr/etc'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'usr/lib/modules/6.1.0-bench/vmlinuz'), 'kernel\n');
    fs.writeFileSync(path.join(dir, 'usr/etc/hostname'), 'bench\n');
    fs.writeFileSync(path.join(dir, 'usr/lib/os-release'), `ID=tabula\nVERSION_ID=${version}\n`);
  }
  let changedBytes = 0;
  for (let i = 0; i < FILES; i++) {
    const rel = `usr/share/pkg${i % 500}/file-${i}.bin`;
    const size = 1024 + ((i * 7919) % 15360); // 1–16 KiB
    const a = bytesFor(`v1-${i}`, size);
    fs.mkdirSync(path.dirname(path.join(v1, rel)), { recursive: true });
    fs.mkdirSync(path.dirname(path.join(v2, rel)), { recursive: true });
    fs.writeFileSync(path.join(v1, rel), a);
    fs.utimesSync(path.join(v1, rel), when, when);
    const changed = i % 100 === 7;
    fs.writeFileSync(path.join(v2, rel), changed ? bytesFor(`v2-${i}`, size) : a);
    const later = new Date(when.getTime() + (changed ? 86_400_000 : 0));
    fs.utimesSync(path.join(v2, rel), later, later);
    if (changed) changedBytes += size;
  }
  fs.writeFileSync(stamp, JSON.stringify({ changedBytes }));
  return { v1, v2, changedBytes };
}

const time = async <T>(fn: () => Promise<T> | T): Promise<[T, number]> => {
  const t = process.hrtime.bigint();
  const r = await fn();
  return [r, Number(process.hrtime.bigint() - t) / 1e9];
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
const rows: string[][] = [];
const row = (...cells: string[]) => rows.push(cells);

async function benchRsyncTree(v1: string, v2: string, changedBytes: number) {
  const fleet = createImageFleet();
  const sshd = await startSshServer();
  try {
    const key = generateKeyPair();
    publishRsyncTree({ treeDir: v1, outDir: fleet.serverDir, version: '1.0', channel: 'stable', privateKeyPem: key.privateKeyPem });
    const url = sshd.url(fleet.serverDir);
    const backend = () => createRsyncTreeBackend({ root: fleet.root, source: { url, sshOptions: sshd.sshOptions, connectTimeoutSeconds: 10 }, channel: 'stable', trustedKeys: [key.publicKey] });
    const b1 = backend();
    await b1.stage();
    b1.close();
    fakeBootloaderBoot(fleet.root);
    publishRsyncTree({ treeDir: v2, outDir: fleet.serverDir, version: '2.0', channel: 'stable', privateKeyPem: key.privateKeyPem });
    execFileSync('sync');

    // Plain tools first: a full copy (what a non-delta update costs) and the direct --link-dest job.
    const ssh = ['ssh', '-p', String(sshd.port), ...sshd.sshOptions].join(' ');
    const statsBytes = (out: string) => Number(/Total bytes received: ([\d,]+)/.exec(out)![1]!.replace(/,/g, ''));
    const src = `${sshd.user}@127.0.0.1:${fleet.serverDir}/images/2.0/tree/`;
    const fullDir = path.join(fleet.dir, 'full');
    const [fullOut, fullTime] = await time(() => execFileSync('rsync', ['-a', '--hard-links', '--stats', '--no-h', '-e', ssh, src, fullDir + '/'], { encoding: 'utf8' }));
    fs.rmSync(fullDir, { recursive: true });
    // Three alternating rounds, medians: the machine is shared and single runs are noisy.
    const directDir = path.join(fleet.dir, 'direct');
    const linkDest = path.join(fleet.root, 'var/lib/tabula/deployments/1.0/tree');
    const directTimes: number[] = [];
    const tabulaTimes: number[] = [];
    let directOut = '';
    let r = { bytesReceived: 0, filesHashed: 0 };
    for (let round = 0; round < 3; round++) {
      const [out, t] = await time(() => execFileSync('rsync', ['-a', '--hard-links', '--stats', '--no-h', `--link-dest=${linkDest}`, '-e', ssh, src, directDir + '/'], { encoding: 'utf8' }));
      directOut = out;
      directTimes.push(t);
      fs.rmSync(directDir, { recursive: true });
      execFileSync('sync');
      const b2 = backend();
      const [res, tt] = await time(() => b2.stage());
      b2.close();
      r = res;
      tabulaTimes.push(tt);
      // Back to "booted 1.0, nothing staged" for the next round.
      fs.rmSync(path.join(fleet.root, 'var/lib/tabula/deployments/2.0'), { recursive: true });
      switchSymlink(path.join(fleet.root, 'var/lib/tabula/next'), 'deployments/1.0');
      execFileSync('sync');
    }
    const directTime = median(directTimes);
    const tabulaTime = median(tabulaTimes);
    row('rsync-tree', 'full copy (rsync -a)', mb(statsBytes(fullOut)), `${fullTime.toFixed(2)} s`, '');
    row('rsync-tree', 'direct rsync --link-dest (median of 3)', mb(statsBytes(directOut)), `${directTime.toFixed(2)} s`, '');
    row('rsync-tree', `Tabula stage (median of 3, ${r.filesHashed} hashed)`, mb(r.bytesReceived), `${tabulaTime.toFixed(2)} s`, '');
    return {
      bytesVsChanged: r.bytesReceived / changedBytes,
      bytesVsFull: r.bytesReceived / statsBytes(fullOut),
      timeVsDirect: tabulaTime / directTime,
    };
  } finally {
    await sshd.dispose();
    fleet.dispose();
  }
}

async function benchOstree(v1: string, v2: string, changedBytes: number) {
  const fleet = createImageFleet();
  const twin = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-bench-twin-'));
  const http = await startCountingHttpServer(fleet.serverDir);
  try {
    const gpg = fleet.gpgKey();
    const ref = 'tabula/bench/x86_64';
    const c1 = publishOstree({ treeDir: v1, outDir: fleet.serverDir, version: '1.0', channel: 'stable', ref, gpg }).commit;
    fleet.initOstreeSysroot();
    execFileSync('ostree', ['admin', 'init-fs', twin], { stdio: 'ignore' });
    execFileSync('ostree', ['admin', `--sysroot=${twin}`, 'os-init', 'tabula'], { stdio: 'ignore' });
    const url = `${http.url}/repo`;
    const backend = createOstreeBackend({ sysroot: fleet.root, url, ref, osName: 'tabula', gpgKeyring: gpg.keyring });
    await backend.stage();
    fakeBootloaderBoot(fleet.root, c1);
    // The twin: same remote and keys, v1 pulled and deployed with the plain tool.
    const twinRepo = `--repo=${twin}/ostree/repo`;
    execFileSync('ostree', [twinRepo, 'remote', 'add', '--set=gpg-verify=true', '--set=gpg-verify-summary=true', 'tabula', url, ref]);
    execFileSync('ostree', [twinRepo, 'remote', 'gpg-import', 'tabula', '-k', gpg.keyring], { stdio: 'ignore' });
    await run('ostree', [twinRepo, 'pull', 'tabula', ref]);
    await run('ostree', ['admin', `--sysroot=${twin}`, 'deploy', '--os=tabula', '--retain', `tabula:${ref}`]);
    publishOstree({ treeDir: v2, outDir: fleet.serverDir, version: '2.0', channel: 'stable', ref, gpg });
    execFileSync('sync');

    http.reset();
    const [, pullTime] = await time(() => run('ostree', [twinRepo, 'pull', 'tabula', ref]));
    const directBytes = http.bytesSent();
    const [, deployTime] = await time(() => run('ostree', ['admin', `--sysroot=${twin}`, 'deploy', '--os=tabula', '--retain', `tabula:${ref}`]));
    http.reset();
    const [, tabulaTime] = await time(() => backend.stage());
    const tabulaBytes = http.bytesSent();
    row('ostree', 'direct ostree pull', mb(directBytes), `${pullTime.toFixed(2)} s`, '');
    row('ostree', 'direct ostree pull + admin deploy', mb(directBytes), `${(pullTime + deployTime).toFixed(2)} s`, '');
    row('ostree', 'Tabula stage (pull + deploy)', mb(tabulaBytes), `${tabulaTime.toFixed(2)} s`, '');
    return { bytesVsChanged: tabulaBytes / changedBytes, bytesVsDirect: tabulaBytes / directBytes, timeVsDirect: tabulaTime / (pullTime + deployTime) };
  } finally {
    await http.close();
    try {
      execFileSync('chattr', ['-R', '-i', twin], { stdio: 'ignore' });
    } catch {
      /* nothing immutable */
    }
    fs.rmSync(twin, { recursive: true, force: true });
    fleet.dispose();
  }
}

async function main() {
  console.log(`Building the trees (${FILES} files, ${CHANGED} changed) in ${cacheDir} (reused next time)…`);
  const { v1, v2, changedBytes } = buildTrees();
  console.log(`Changed content: ${mb(changedBytes)} in ${CHANGED} files.\n`);
  const rt = await benchRsyncTree(v1, v2, changedBytes);
  const os_ = process.env.SKIP_OSTREE ? { bytesVsChanged: 0, bytesVsDirect: 0, timeVsDirect: 0 } : await benchOstree(v1, v2, changedBytes);
  const widths = [11, 44, 10, 9];
  console.log(['backend', 'method', 'bytes', 'time'].map((h, i) => h.padEnd(widths[i]!)).join(' '));
  for (const r of rows) console.log(r.slice(0, 4).map((c, i) => c.padEnd(widths[i]!)).join(' '));
  const mark = (v: number, target: number) => `${v.toFixed(2)}× ${v <= target ? '(meets ≤' : '(misses ≤'}${target}×)`;
  console.log('\nRatios:');
  console.log(`  rsync-tree bytes / changed content:      ${mark(rt.bytesVsChanged, 1.1)}`);
  console.log(`  rsync-tree bytes / full copy:            ${ratio(rt.bytesVsFull, 1)}`);
  console.log(`  rsync-tree time / direct rsync:          ${mark(rt.timeVsDirect, 1.1)}`);
  console.log(`  ostree bytes / changed content:          ${mark(os_.bytesVsChanged, 1.1)}`);
  console.log(`  ostree bytes / direct ostree pull:       ${ratio(os_.bytesVsDirect, 1)}`);
  console.log(`  ostree time / direct pull + deploy:      ${mark(os_.timeVsDirect, 1.1)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
