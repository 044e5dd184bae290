// npm run bench:home — `tabula sync` as a whole process against plain rsync (and Unison, when installed),
// side by side in one run, over a real sshd on 127.0.0.1, on a synthetic home (default 100,000 files; set
// TABULA_BENCH_FILES). Prints wall time and peak RSS of each process (/usr/bin/time), ratios, and the
// storage-side work of an idle run (directory entries read, files opened, traced on sshd and its
// children with strace). The home is built once and reused (creating 100k files is slow here).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSshServer } from '../fixtures/sshd';
import { parseStorageUrl } from '../../src-main/core/storage-url';
import { createChangeJournal } from '../../src-main/core/sync/change-journal';
import { localEndpoint, storageEndpoint } from '../../src-main/core/sync/endpoint';
import { runSync } from '../../src-main/core/sync/engine';

const FILES = Number(process.env.TABULA_BENCH_FILES ?? 100_000);
const RUNS = Number(process.env.TABULA_BENCH_RUNS ?? 3);
// /var/tmp: kept across reboots and not a tmpfs; TABULA_BENCH_DIR to put it elsewhere.
const base = path.join(process.env.TABULA_BENCH_DIR ?? '/var/tmp', `tabula-bench-${FILES}`);
const home = path.join(base, 'home');

/**
 * Like PERF-NOTES: mostly 1–16 KiB files in folders of 20, 1% of 0.1–2 MiB, 0.01% of 20–100 MiB. Past the
 * first 100,000 the files are small (0.1–4 KiB, a developer's node_modules or a mail store): a million-file
 * home is a home of many small files, and four copies of 17 GB would not fit beside the other work here.
 */
function buildHome() {
  if (fs.existsSync(path.join(base, 'home.done'))) return;
  fs.rmSync(base, { recursive: true, force: true });
  const rnd = (min: number, max: number) => min + Math.floor(Math.random() * (max - min));
  const chunk = crypto.randomBytes(4 << 20);
  const data = (size: number) => (size <= chunk.length ? chunk.subarray(rnd(0, chunk.length - size), undefined).subarray(0, size) : Buffer.concat(Array(Math.ceil(size / chunk.length)).fill(chunk)).subarray(0, size));
  for (let i = 0; i < FILES; i++) {
    const dir = path.join(home, `d${Math.floor(i / 20) % 250}`, `s${Math.floor(i / 20)}`);
    if (i % 20 === 0) fs.mkdirSync(dir, { recursive: true });
    const size = i >= 100_000 ? rnd(100, 4 << 10) : i % 10_000 === 7 ? rnd(20 << 20, 100 << 20) : i % 100 === 3 ? rnd(100 << 10, 2 << 20) : rnd(1 << 10, 16 << 10);
    fs.writeFileSync(path.join(dir, `f${i}.dat`), data(size));
  }
  fs.writeFileSync(path.join(base, 'home.done'), '');
}

/** 1% changed: 1% modified, 0.1% new, 0.1% deleted. */
function changeOnePercent(round: number) {
  const all = execFileSync('find', [home, '-type', 'f', '-name', '*.dat'], { maxBuffer: 1 << 30 }).toString().trim().split('\n');
  for (let i = 0; i < all.length; i += 100) fs.appendFileSync(all[i]!, `changed ${round}\n`);
  for (let i = 0; i < FILES / 1000; i++) fs.writeFileSync(path.join(home, `d${i % 250}`, `new-${round}-${i}.txt`), crypto.randomBytes(4096));
  for (let i = 50; i < all.length; i += 1000) fs.rmSync(all[i]!);
}

interface Measured {
  ms: number;
  /** Processor time of the process and its children (user + system): what a loaded machine does not stretch. */
  cpuMs: number;
  /** Peak resident memory of the process, KiB. */
  rssKiB: number;
}

/** Runs a command to the end under /usr/bin/time: wall time and peak RSS of the whole process. */
function measure(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Measured {
  const out = path.join(os.tmpdir(), `tabula-bench-time-${process.pid}`);
  try {
    const r = spawnSync('/usr/bin/time', ['-o', out, '-f', '%e %M %U %S', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env, maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`${cmd} exited ${r.status}: ${r.stderr.toString().slice(-2000)}`);
    // With TABULA_SYNC_TRACE set, each run's phases (time, memory) go to this file, to read after the run.
    if (process.env.TABULA_BENCH_TRACE_LOG) fs.appendFileSync(process.env.TABULA_BENCH_TRACE_LOG, `$ ${path.basename(cmd)} ${args.slice(-3).join(' ')}\n${r.stderr.toString()}`);
    const [secs, kib, user, sys] = fs.readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    return { ms: secs! * 1000, cpuMs: (user! + sys!) * 1000, rssKiB: kib! };
  } finally {
    fs.rmSync(out, { force: true }); // one file per measurement was left in /tmp
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
/** Wall time, with the processor time beside it: a starved run (nice 19 beside busy virtual machines) shows as a wide gap. */
const sc = (m: Measured) => `${s(m.ms)} (cpu ${s(m.cpuMs)})`;
const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;
const repoRoot = process.cwd(); // npm runs scripts from the package root

/** What the storage side does while `run` runs: strace on sshd and every process it starts. */
async function storageWork(sshdPid: number, root: string, run: () => unknown): Promise<{ dirReads: number; dirBytes: number; opens: number; bytesRead: number }> {
  const log = path.join(os.tmpdir(), `tabula-bench-strace-${process.pid}`);
  // sshd and the sessions it already runs (ssh's shared connection), and what they start from now on.
  const pids = [sshdPid];
  const parents = new Map<number, number[]>();
  for (const e of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(e)]);
    } catch {
      // gone
    }
  }
  for (const p of pids) pids.push(...(parents.get(p) ?? []));
  const tracer = spawn('strace', ['-f', '-qq', '-y', '-e', 'trace=getdents64,openat,read', '-o', log, ...pids.flatMap((p) => ['-p', String(p)])], { stdio: 'ignore' });
  spawnSync('sleep', ['1']); // attached
  await run();
  spawnSync('sleep', ['0.5']);
  tracer.kill('SIGINT');
  spawnSync('sleep', ['0.5']);
  let dirReads = 0;
  let dirBytes = 0;
  let opens = 0;
  let bytesRead = 0;
  // Only what concerns the storage folder (-y names each descriptor's file), not ssh's own start-up.
  for (const line of fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.includes(root))) {
    const m = /getdents64\(.*\) = (\d+)/.exec(line);
    const r = /\bread\(\d+<[^>]*>.*\) = (\d+)/.exec(line);
    if (m) {
      dirReads++;
      dirBytes += Number(m[1]);
    } else if (r) bytesRead += Number(r[1]);
    else if (/openat\(.*\) = \d+/.test(line)) opens++;
  }
  fs.rmSync(log, { force: true });
  return { dirReads, dirBytes, opens, bytesRead };
}

async function main() {
  console.log(`Synthetic home: ${FILES} files (building if needed, in ${home})…`);
  buildHome();
  if (process.env.TABULA_BENCH_BUILD_ONLY) return;
  npmBuild();
  const sshd = await startSshServer();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-bench-run-'));
  const ctl = fs.mkdtempSync('/tmp/tb-');
  // The person's own folders on a tmpfs: a laptop's own disk is not the storage's. On the storage's
  // disk, the first of Tabula's synced writes after a first sync (the archive) waited for the writeback
  // of the 1.7 GB rsync had just written there (ext4 commits a file's data before a later fsync
  // returns): 50 s against `rsync -a`'s 14 s.
  const user = fs.mkdtempSync('/dev/shm/tabula-bench-user-');
  try {
    const sshE = ['ssh', '-p', String(sshd.port), ...sshd.sshOptions, '-o', 'ControlMaster=auto', '-o', `ControlPath=${ctl}/cm-%C`, '-o', 'ControlPersist=30'].join(' ');
    const plainDest = `${sshd.user}@127.0.0.1:${work}/plain/`;
    const rsync = (...extra: string[]) => measure('rsync', ['-a', ...extra, '-e', sshE, `${home}/`, plainDest]);
    // A first sync as a person types it: ssh's own connection (through a kept one, its master relays every
    // byte once more, as Tabula's first sync avoids: endpoint.ts bulkRsyncOptions). With AES-GCM: as
    // Tabula asks ssh on a processor with AES instructions (storage-url.ts cipherPreference).
    const sshAlone = ['ssh', '-p', String(sshd.port), ...sshd.sshOptions].join(' ');
    const rsyncFirst = () => measure('rsync', ['-a', '-e', sshAlone, `${home}/`, plainDest]);
    const rsyncAes = () => measure('rsync', ['-a', '-e', `${sshAlone} -o Ciphers=^aes128-gcm@openssh.com`, `${home}/`, plainDest]);
    // The CLI as a person runs it: its own config (the storage, the ssh key), state and runtime folders.
    for (const d of ['config/tabula', 'state']) fs.mkdirSync(path.join(user, d), { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(user, 'config/tabula/config.json'), JSON.stringify({ storage: { url: sshd.url(`${work}/tabula`), sshOptions: sshd.sshOptions } }));
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_CONFIG_HOME: path.join(user, 'config'), XDG_STATE_HOME: path.join(user, 'state'), XDG_DATA_HOME: path.join(user, 'data'), XDG_CACHE_HOME: path.join(user, 'cache'), XDG_RUNTIME_DIR: ctl }; // short: ssh's control socket path has a 108-byte limit
    delete env.TABULA_CONFIG;
    // TABULA_BENCH_NODE_ARGS: Node's own options for `tabula sync` (e.g. "--cpu-prof --cpu-prof-dir=DIR", which NODE_OPTIONS refuses).
    const nodeArgs = (process.env.TABULA_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const tabula = (...extra: string[]) => measure(process.execPath, [...nodeArgs, path.join(repoRoot, 'bin/tabula.js'), 'sync', '--quick', ...extra], env);
    const med = (xs: Measured[]) => ({ ms: median(xs.map((x) => x.ms)), cpuMs: median(xs.map((x) => x.cpuMs)), rssKiB: Math.max(...xs.map((x) => x.rssKiB)) });

    // Each first sync writes the whole home (1.7 GB at 100k): the one after would otherwise wait for the
    // writeback of the one before. Flushed first, each pays only for its own.
    const flushed = <T>(run: () => T) => (spawnSync('sync'), run());
    // TABULA_BENCH_ONLY=local: nothing changed with the storage a local folder, alone.
    if (process.env.TABULA_BENCH_ONLY === 'local') return await localPath(work, env, med);
    // TABULA_BENCH_ONLY=memory: Tabula alone (at a million files rsync's own first sync adds many minutes):
    // its first sync, the run after it, and RUNS runs with nothing changed, each printed as it ends.
    if (process.env.TABULA_BENCH_ONLY === 'memory') return memoryOnly(tabula, flushed);
    // TABULA_BENCH_ONLY=first: the first syncs alone (each tool in turn, alternating), to work on their time.
    if (process.env.TABULA_BENCH_ONLY === 'first') return firstOnly(work, user, rsyncFirst, rsyncAes, tabula, flushed);
    const firstPlain = flushed(rsyncFirst);
    const firstTabula = flushed(() => tabula());
    // TABULA_BENCH_ONLY=agent: `tabula sync --quick` while the agent runs (a run of the agent), in pairs.
    if (process.env.TABULA_BENCH_ONLY === 'agent') {
      console.log(`first sync (one pair, rsync first): Tabula ${sc(firstTabula)}, ${mib(firstTabula.rssKiB)}; rsync ${sc(firstPlain)}; ${(firstTabula.ms / firstPlain.ms).toFixed(2)}× (load ${loadNow()})`);
      return await throughAgent(work, env, rsync, tabula, sshd.sshOptions, sshd.port, sshd.user);
    }
    // The run after a first sync is not an idle one: it records the home's inodes and change times (the
    // first sync's archive has the sent copies' only) and writes the archive. Said apart from the idle runs.
    const settleTabula = tabula();
    const noChangePlain = med(Array.from({ length: RUNS }, () => rsync()));
    const noChangeTabula = med(Array.from({ length: RUNS }, () => tabula()));
    const sshdPid = Number(fs.readFileSync(path.join(path.dirname(sshd.identityFile), 'sshd.pid'), 'utf8'));
    const idleTabula = await storageWork(sshdPid, `${work}/tabula`, () => void tabula());
    const idlePlain = await storageWork(sshdPid, `${work}/plain`, () => void rsync());
    const agent = await agentRuns(sshd.url(`${work}/tabula`), sshd.sshOptions, env, sshdPid, `${work}/tabula`);
    const changedPlain: Measured[] = [];
    const changedTabula: Measured[] = [];
    for (let i = 0; i < RUNS; i++) {
      changeOnePercent(i);
      changedPlain.push(rsync('--delete'));
      changedTabula.push(tabula());
    }
    const verify = tabula('--verify');

    let unison = 'not installed (apt-get install unison to compare)';
    if (spawnSync('unison', ['-version']).status === 0) {
      if (FILES > 20_000 && !process.env.TABULA_BENCH_UNISON) unison = `skipped at ${FILES} files (its first sync takes minutes; set TABULA_BENCH_UNISON=1)`;
      else {
        const uRoot = path.join(work, 'unison');
        fs.mkdirSync(uRoot);
        const u = () => measure('unison', [home, `ssh://${sshd.user}@127.0.0.1/${uRoot}`, '-batch', '-silent', '-sshargs', `-p ${sshd.port} ${sshd.sshOptions.join(' ')}`], { ...process.env, UNISON: path.join(work, '.unison') });
        const first = u();
        const noChange = med(Array.from({ length: RUNS }, u));
        changeOnePercent(99);
        const changed = u();
        // The same change for both, one after the other: Tabula's run beside Unison's is the pair compared.
        const changedBeside = tabula();
        changedTabula.push(changedBeside);
        const vs = (t: Measured, x: Measured) => `${(t.ms / x.ms).toFixed(2)}× (cpu ${(t.cpuMs / x.cpuMs).toFixed(2)}×)`;
        unison = `first ${sc(first)} ${mib(first.rssKiB)} (Tabula ${vs(firstTabula, first)}), no change ${sc(noChange)} ${mib(noChange.rssKiB)} (Tabula ${vs(noChangeTabula, noChange)}), 1% changed ${sc(changed)} ${mib(changed.rssKiB)} (Tabula beside it ${sc(changedBeside)}, ${vs(changedBeside, changed)})`;
      }
    }

    const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
    const ch = med(changedTabula);
    const cp = med(changedPlain);
    console.log(`\n\`tabula sync\` (whole process) vs plain rsync over ssh on 127.0.0.1, ${FILES} files, median of ${RUNS}; load average ${load} on ${os.cpus().length} cores`);
    console.log(`| job | Tabula | rsync | ratio |`);
    console.log(`|---|---|---|---|`);
    console.log(`| first full sync | ${sc(firstTabula)}, ${mib(firstTabula.rssKiB)} | ${sc(firstPlain)}, ${mib(firstPlain.rssKiB)} | ${(firstTabula.ms / firstPlain.ms).toFixed(2)}× |`);
    console.log(`| the run after it (records the home's inodes, writes the archive) | ${sc(settleTabula)}, ${mib(settleTabula.rssKiB)} | | |`);
    console.log(`| nothing changed | ${sc(noChangeTabula)}, ${mib(noChangeTabula.rssKiB)} | ${sc(noChangePlain)}, ${mib(noChangePlain.rssKiB)} | ${(noChangeTabula.ms / noChangePlain.ms).toFixed(2)}× |`);
    console.log(`| 1% changed | ${sc(ch)}, ${mib(ch.rssKiB)} | ${sc(cp)} (--delete), ${mib(cp.rssKiB)} | ${(ch.ms / cp.ms).toFixed(2)}× |`);
    console.log(`| nothing changed, full storage listing (--verify) | ${sc(verify)}, ${mib(verify.rssKiB)} | | |`);
    console.log(`| storage side of an idle run | ${idleTabula.dirReads} directory reads (${idleTabula.dirBytes} bytes of entries), ${idleTabula.opens} files opened, ${idleTabula.bytesRead} bytes read | ${idlePlain.dirReads} directory reads (${idlePlain.dirBytes} bytes), ${idlePlain.opens} opened | |`);
    console.log(`| nothing changed, the agent (change journal, kept ssh connection; a run inside the running agent) | ${s(agent.idle)} | | ${(agent.idle / noChangePlain.ms).toFixed(2)}× |`);
    console.log(`| one file changed in a deep folder, the agent | ${s(agent.oneFile)} | | |`);
    console.log(`| storage side of an idle agent run | ${agent.work.dirReads} directory reads, ${agent.work.opens} files opened, ${agent.work.bytesRead} bytes read | | |`);
    console.log(`The agent's inotifywait: ${agent.watches} folders watched, ${mib(agent.watcherKiB)} resident; the agent's first run after it starts (watches set up, the home listed in full): ${s(agent.firstMs)}.`);
    console.log(`Unison: ${unison}`);
  } catch (err) {
    // Said before the clean-up below, which takes many minutes at a million files.
    console.error(err);
    process.exitCode = 1;
  } finally {
    await sshd.dispose();
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(user, { recursive: true, force: true });
    fs.rmSync(ctl, { recursive: true, force: true });
  }
}

/** Nothing changed, the storage a local folder (a mounted NAS): `tabula sync` against `rsync -a` between two folders. */
async function localPath(work: string, env: NodeJS.ProcessEnv, med: (xs: Measured[]) => Measured) {
  const dest = path.join(work, 'local-storage');
  fs.mkdirSync(dest); // a local storage that is missing reads as not mounted
  const user = path.join(work, 'user-local');
  for (const d of ['config/tabula', 'state']) fs.mkdirSync(path.join(user, d), { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(user, 'config/tabula/config.json'), JSON.stringify({ storage: { url: dest } }));
  const localEnv = { ...env, XDG_CONFIG_HOME: path.join(user, 'config'), XDG_STATE_HOME: path.join(user, 'state') };
  const rsync = () => measure('rsync', ['-a', `${home}/`, path.join(work, 'plain-local') + '/']);
  const tabula = () => measure(process.execPath, [path.join(repoRoot, 'bin/tabula.js'), 'sync', '--quick'], localEnv);
  rsync();
  tabula();
  tabula(); // the run after a first sync records the home's inodes
  const plain = med(Array.from({ length: RUNS }, rsync));
  const ours = med(Array.from({ length: RUNS }, tabula));
  const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  console.log(`\nnothing changed, local storage path, ${FILES} files, median of ${RUNS}; load average ${load}`);
  console.log(`| nothing changed, local storage path | ${sc(ours)}, ${mib(ours.rssKiB)} | ${sc(plain)}, ${mib(plain.rssKiB)} | ${(ours.ms / plain.ms).toFixed(2)}× |`);
  // The same with the agent running: `tabula sync` is then a run of the agent, which lists only what its
  // change journal marked. Its first run after a start lists the home in full.
  const agent = await startAgent(localEnv);
  try {
    tabula();
    pairs('nothing changed, local storage path, through the agent', rsync, tabula);
  } finally {
    await agent.stop();
  }
}

/** Alternating pairs of the plain tool and `tabula sync` (which goes first alternates), printed with each pair's ratio and the median. */
function pairs(what: string, plain: () => Measured, ours: () => Measured, before: (i: number) => void = () => {}) {
  const rows: [Measured, Measured, string][] = [];
  // Each pair printed as it ends: a bench cut short (the quiet window over) still says what it measured.
  console.log(`\n${what}, ${FILES} files, ${RUNS} alternating pairs (load average after each pair)`);
  console.log('| pair | `tabula sync` | plain | ratio (wall) | ratio (cpu) | load |');
  console.log('|---|---|---|---|---|---|');
  for (let i = 0; i < RUNS; i++) {
    before(i);
    const t = i % 2 ? ours() : null;
    const p = plain();
    rows.push([p, t ?? ours(), loadNow()]);
    printPair(rows.length, rows[rows.length - 1]!);
  }
  console.log(`median: Tabula ${s(median(rows.map(([, t]) => t.ms)))}, plain ${s(median(rows.map(([p]) => p.ms)))}, ratio (wall) ${median(rows.map(([p, t]) => t.ms / p.ms)).toFixed(2)}×, (cpu) ${median(rows.map(([p, t]) => t.cpuMs / p.cpuMs)).toFixed(2)}×`);
}

/** The agent as a person's session runs it (`tabula --headless`), with its change journal; resolves once it listens. */
async function startAgent(env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/tabula.js'), '--headless', '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the agent did not start within 60 s:\n${out}`)), 60_000);
    child.stdout!.on('data', (c: Buffer) => ((out += c), /^Open http/m.test(out) && (clearTimeout(t), resolve())));
    child.stderr!.on('data', (c: Buffer) => (out += c));
    child.on('close', () => (clearTimeout(t), reject(new Error(`the agent exited:\n${out}`))));
  });
  return { stop: () => new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : (child.on('close', () => resolve()), child.kill('SIGTERM')))) };
}

/**
 * `tabula sync --quick` while the agent runs, whole processes: nothing changed and 1% changed, each in
 * pairs with rsync (and, with TABULA_BENCH_UNISON=1, 1% changed beside Unison, its first sync made first).
 */
async function throughAgent(work: string, env: NodeJS.ProcessEnv, rsync: (...extra: string[]) => Measured, tabula: (...extra: string[]) => Measured, sshOptions: string[], port: number, user: string) {
  // Nothing runs by itself during the bench: only the runs `tabula sync` asks for.
  const cfg = path.join(env.XDG_CONFIG_HOME!, 'tabula/config.json');
  fs.writeFileSync(cfg, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfg, 'utf8')), backup: { debounceSeconds: 3600, intervalMinutes: 1440 } }));
  let unison: (() => Measured) | null = null;
  if (process.env.TABULA_BENCH_UNISON) {
    const uRoot = path.join(work, 'unison');
    fs.mkdirSync(uRoot);
    unison = () => measure('unison', [home, `ssh://${user}@127.0.0.1/${uRoot}`, '-batch', '-silent', '-sshargs', `-p ${port} ${sshOptions.join(' ')}`], { ...process.env, UNISON: path.join(work, '.unison') });
    console.log(`Unison's first sync: ${sc(unison())}`);
  }
  const agent = await startAgent(env);
  try {
    console.log(`the agent's first run (the home listed in full): ${sc(tabula())}`);
    // Node's own start, measured before each pair: the floor under a whole `tabula sync` process.
    const bare: Measured[] = [];
    pairs('nothing changed over ssh, through the agent (rsync -a beside it)', () => rsync(), () => tabula(), () => void bare.push(measure(process.execPath, ['-e', ''])));
    console.log(`a bare Node start (\`node -e ''\`) before each pair: ${bare.map((m) => `${sc(m)}, ${mib(m.rssKiB)}`).join(' / ')}; median ${s(median(bare.map((m) => m.ms)))} (cpu ${s(median(bare.map((m) => m.cpuMs)))})`);
    // TABULA_BENCH_AGENT=idle: only that (the other pairs take minutes beside virtual machines).
    if (process.env.TABULA_BENCH_AGENT === 'idle') return;
    pairs('nothing changed over ssh, `--home` (a process of its own, the home listed in full; rsync -a beside it)', () => rsync(), () => tabula('--home', home));
    pairs('1% changed over ssh, through the agent (rsync -a --delete beside it, after the same change)', () => rsync('--delete'), () => tabula(), (i) => changeOnePercent(100 + i));
    if (unison) {
      const u = unison;
      pairs('1% changed over ssh, through the agent (Unison beside it, after the same change)', u, () => tabula(), (i) => changeOnePercent(200 + i));
      pairs('nothing changed over ssh, through the agent (Unison beside it)', u, () => tabula());
    }
  } finally {
    await agent.stop();
  }
}

/** The first sync of each tool, alternating, TABULA_BENCH_RUNS pairs, from an empty storage each time. */
function firstOnly(work: string, user: string, rsync: () => Measured, rsyncAes: () => Measured, tabula: () => Measured, flushed: <T>(run: () => T) => T) {
  // Each run starts from an empty storage with no other copy beside it: a run made while the other
  // tool's 1.7 GB copy still sat on the same disk (or tmpfs) took a third longer, whichever tool it was.
  const alone = (run: () => Measured) => {
    for (const d of [path.join(work, 'plain'), path.join(work, 'tabula'), path.join(user, 'state/tabula')]) fs.rmSync(d, { recursive: true, force: true });
    return flushed(run);
  };
  const pairs: [Measured, Measured, string, Measured][] = [];
  console.log(`\nfirst sync only, ${FILES} files (load average after each pair); last column: \`rsync -a\` over ssh with AES-GCM first, as Tabula asks on this processor`);
  console.log('| pair | `tabula sync` | `rsync -a` | ratio (wall) | ratio (cpu) | load | `rsync -a`, AES-GCM | ratio to it |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (let i = 0; i < RUNS; i++) {
    // Which goes first alternates: a pair's runs see the same load, whichever way it drifts.
    const t = i % 2 ? alone(tabula) : null;
    const p = alone(rsync);
    const a = alone(rsyncAes);
    const row: [Measured, Measured, string, Measured] = [p, t ?? alone(tabula), loadNow(), a];
    pairs.push(row);
    console.log(`| ${pairs.length} | ${sc(row[1])}, ${mib(row[1].rssKiB)} | ${sc(p)}, ${mib(p.rssKiB)} | ${(row[1].ms / p.ms).toFixed(2)}× | ${(row[1].cpuMs / p.cpuMs).toFixed(2)}× | ${row[2]} | ${sc(a)} | ${(row[1].ms / a.ms).toFixed(2)}× |`);
  }
  console.log(`median ratio (wall) ${median(pairs.map(([p, t]) => t.ms / p.ms)).toFixed(2)}×, (cpu) ${median(pairs.map(([p, t]) => t.cpuMs / p.cpuMs)).toFixed(2)}×, to \`rsync -a\` with AES-GCM ${median(pairs.map(([, t, , a]) => t.ms / a.ms)).toFixed(2)}×; peak of Tabula's processes ${mib(Math.max(...pairs.map(([, t]) => t.rssKiB)))}`);
}

const loadNow = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');

/** One row of a pairs table (`tabula sync` beside the plain tool), printed as soon as the pair ends. */
const printPair = (n: number, [p, t, load]: [Measured, Measured, string]) =>
  console.log(`| ${n} | ${sc(t)}, ${mib(t.rssKiB)} | ${sc(p)}, ${mib(p.rssKiB)} | ${(t.ms / p.ms).toFixed(2)}× | ${(t.cpuMs / p.cpuMs).toFixed(2)}× | ${load} |`);

/** Peak memory of `tabula sync` as a whole process: the first sync, the run after it, and runs with nothing changed. */
function memoryOnly(tabula: () => Measured, flushed: <T>(run: () => T) => T) {
  console.log(`\n\`tabula sync\` alone, ${FILES} files: peak RSS of the whole process (each run printed as it ends)`);
  console.log('| run | wall (cpu) | peak RSS | load |');
  console.log('|---|---|---|---|');
  const row = (what: string, m: Measured) => console.log(`| ${what} | ${sc(m)} | ${mib(m.rssKiB)} | ${loadNow()} |`);
  row('first sync', flushed(() => tabula()));
  row('the run after it (records the home\'s inodes)', tabula());
  for (let i = 0; i < RUNS; i++) row(`nothing changed ${i + 1}`, tabula());
}

/**
 * The agent's runs, inside one process as in the agent: its change journal on the home, its ssh
 * connection kept between runs. Times are of one run (take the journal, sync), not of a process start.
 */
async function agentRuns(url: string, sshOptions: string[], env: NodeJS.ProcessEnv, sshdPid: number, root: string) {
  const runDir = fs.mkdtempSync('/tmp/tb-agent-');
  const t0 = performance.now();
  const journal = createChangeJournal({ home, ignore: [], workDir: runDir });
  const storage = storageEndpoint(parseStorageUrl(url), sshOptions, 10, runDir, 1200);
  // The agent's own default excludes for a home whose state lives elsewhere (options.ts).
  const excludes = ['/.cache/', '/.thumbnails/', '/.local/share/Trash/'];
  const run = async () => {
    const started = performance.now();
    const taken = await journal.take();
    await runSync({ home: localEndpoint(home), storage, excludes, stateDir: path.join(env.XDG_STATE_HOME!, 'tabula'), host: os.hostname(), localChanges: taken.changes });
    return performance.now() - started;
  };
  try {
    await run(); // the first after a start lists the home in full
    const firstMs = performance.now() - t0;
    const idle = median(await sequence(RUNS, run));
    const work = await storageWork(sshdPid, root, run);
    const deep = execFileSync('find', [home, '-mindepth', '2', '-type', 'f', '-name', '*.dat', '-print', '-quit']).toString().trim();
    const oneFile = median(
      await sequence(RUNS, () => {
        fs.appendFileSync(deep, 'x');
        return run();
      }),
    );
    const pid = journal.watcherPid!;
    const watcherKiB = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    const watches = fs.readdirSync(`/proc/${pid}/fdinfo`).reduce((n, fd) => n + fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify')).length, 0);
    return { idle, oneFile, work, watcherKiB, watches, firstMs };
  } finally {
    journal.close();
    await storage.close();
    fs.rmSync(runDir, { recursive: true, force: true });
  }
}

async function sequence(n: number, fn: () => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return out;
}

function npmBuild() {
  const r = spawnSync('npm', ['run', '-s', 'build:main'], { cwd: repoRoot, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('npm run build:main failed');
}

void main();
