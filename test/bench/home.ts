// npm run bench:home — Tabula's two-way sync against plain rsync (and Unison, when installed), side by
// side in one run, over a real sshd on 127.0.0.1, on a synthetic home (default 100,000 files; set
// TABULA_BENCH_FILES). Prints times, ratios and the engine's peak memory. The home is built once and
// reused (creating 100k files is slow on this kind of machine).
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseStorageUrl } from '../../src-main/core/storage-url';
import { localEndpoint, storageEndpoint } from '../../src-main/core/sync/endpoint';
import { runSync } from '../../src-main/core/sync/engine';
import { startSshServer } from '../fixtures/sshd';

const FILES = Number(process.env.TABULA_BENCH_FILES ?? 100_000);
const RUNS = Number(process.env.TABULA_BENCH_RUNS ?? 3);
const base = path.join(os.tmpdir(), `tabula-bench-${FILES}`);
const home = path.join(base, 'home');

/** Like PERF-NOTES: mostly 1–16 KiB files in folders of 20, 1% of 0.1–2 MiB, 0.01% of 20–100 MiB. */
function buildHome() {
  if (fs.existsSync(path.join(base, 'home.done'))) return;
  fs.rmSync(base, { recursive: true, force: true });
  const rnd = (min: number, max: number) => min + Math.floor(Math.random() * (max - min));
  const chunk = crypto.randomBytes(4 << 20);
  const data = (size: number) => (size <= chunk.length ? chunk.subarray(rnd(0, chunk.length - size), undefined).subarray(0, size) : Buffer.concat(Array(Math.ceil(size / chunk.length)).fill(chunk)).subarray(0, size));
  for (let i = 0; i < FILES; i++) {
    const dir = path.join(home, `d${Math.floor(i / 20) % 250}`, `s${Math.floor(i / 20)}`);
    if (i % 20 === 0) fs.mkdirSync(dir, { recursive: true });
    const size = i % 10_000 === 7 ? rnd(20 << 20, 100 << 20) : i % 100 === 3 ? rnd(100 << 10, 2 << 20) : rnd(1 << 10, 16 << 10);
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

function timed<T>(fn: () => T): { ms: number; value: T } {
  const t = performance.now();
  const value = fn();
  return { ms: performance.now() - t, value };
}
async function timedAsync<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main() {
  console.log(`Synthetic home: ${FILES} files (building if needed, in ${home})…`);
  buildHome();
  const sshd = await startSshServer();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-bench-run-'));
  const ctl = fs.mkdtempSync('/tmp/tb-');
  try {
    const sshE = ['ssh', '-p', String(sshd.port), ...sshd.sshOptions, '-o', 'ControlMaster=auto', '-o', `ControlPath=${ctl}/cm-%C`, '-o', 'ControlPersist=30'].join(' ');
    const plainDest = `${sshd.user}@127.0.0.1:${work}/plain/`;
    const rsync = (...extra: string[]) => {
      const r = spawnSync('rsync', ['-a', ...extra, '-e', sshE, `${home}/`, plainDest], { stdio: ['ignore', 'ignore', 'inherit'] });
      if (r.status !== 0) throw new Error(`rsync exited ${r.status}`);
    };
    const storage = storageEndpoint(parseStorageUrl(sshd.url(`${work}/tabula`)), sshd.sshOptions, 10, ctl);
    const stateDir = path.join(work, 'state');
    let peakRss = 0;
    let peakHeap = 0;
    const sync = async () => {
      const baseline = process.memoryUsage().rss;
      const sampler = setInterval(() => {
        const m = process.memoryUsage();
        peakRss = Math.max(peakRss, m.rss - baseline);
        peakHeap = Math.max(peakHeap, m.heapUsed);
      }, 20);
      try {
        return await runSync({ home: localEndpoint(home), storage, excludes: [], stateDir, host: 'bench', maxDeleteShare: 1 });
      } finally {
        clearInterval(sampler);
      }
    };

    const firstPlain = timed(() => rsync());
    const firstTabula = await timedAsync(sync);
    const noChangePlain = median(Array.from({ length: RUNS }, () => timed(() => rsync()).ms));
    const noChangeTabula: number[] = [];
    for (let i = 0; i < RUNS; i++) noChangeTabula.push((await timedAsync(sync)).ms);
    const changedPlain: number[] = [];
    const changedTabula: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      changeOnePercent(i);
      changedPlain.push(timed(() => rsync('--delete')).ms);
      changedTabula.push((await timedAsync(sync)).ms);
    }

    let unison = 'not installed (apt-get install unison to compare)';
    if (spawnSync('unison', ['-version']).status === 0) {
      if (FILES > 20_000 && !process.env.TABULA_BENCH_UNISON) unison = `skipped at ${FILES} files (its first sync takes minutes; set TABULA_BENCH_UNISON=1)`;
      else {
        const uRoot = path.join(work, 'unison');
        fs.mkdirSync(uRoot);
        const u = () => spawnSync('unison', [home, `ssh://${sshd.user}@127.0.0.1/${uRoot}`, '-batch', '-silent', '-sshargs', `-p ${sshd.port} ${sshd.sshOptions.join(' ')}`], { stdio: 'ignore', env: { ...process.env, UNISON: path.join(work, '.unison') } });
        u();
        const noChange = median(Array.from({ length: RUNS }, () => timed(u).ms));
        changeOnePercent(99);
        const changed = timed(u).ms;
        changedTabula.push((await timedAsync(sync)).ms);
        unison = `no change ${s(noChange)} (Tabula ${(median(noChangeTabula) / noChange).toFixed(2)}×), 1% changed ${s(changed)}`;
      }
    }

    const ratio = (a: number, b: number, target: number) => `${(a / b).toFixed(2)}× plain rsync (target ≤ ${target}×) ${a / b <= target ? 'OK' : 'MISSED'}`;
    console.log(`\nTabula two-way sync vs plain one-way rsync over ssh on 127.0.0.1, ${FILES} files, median of ${RUNS}`);
    console.log(`first full sync   Tabula ${s(firstTabula.ms)}   rsync -a ${s(firstPlain.ms)}   ${(firstTabula.ms / firstPlain.ms).toFixed(2)}×`);
    console.log(`nothing changed   Tabula ${s(median(noChangeTabula))}   rsync -a ${s(noChangePlain)}   ${ratio(median(noChangeTabula), noChangePlain, 1.2)}`);
    console.log(`1% changed        Tabula ${s(median(changedTabula))}   rsync -a --delete ${s(median(changedPlain))}   ${ratio(median(changedTabula), median(changedPlain), 1.3)}`);
    console.log(`Unison            ${unison}`);
    console.log(`engine memory     peak RSS +${(peakRss / 2 ** 20).toFixed(0)} MiB, heap ${(peakHeap / 2 ** 20).toFixed(0)} MiB (${Math.round(peakRss / FILES)} bytes a file)`);
  } finally {
    await sshd.dispose();
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(ctl, { recursive: true, force: true });
  }
}

void main();
