// `vite-node test/bench/rsync-options.ts`: `rsync -a` against the options of Tabula's first sync onto an
// empty storage (engine.ts, the whole-home push), one option taken out at a time (DROPS=a,b+c), over the
// bench's sshd on the bench's home (HOME_TREE). Prints wall and processor time (this side's rsync and ssh;
// the storage's rsync, through --rsync-path). WORK_DIR: where the copies go (default /var/tmp; /dev/shm
// for a tmpfs); CIPHER: ssh's cipher (as Tabula asks: ^aes128-gcm@openssh.com). SYSCALLS=1: the storage's rsync under `strace -c -f`
// instead, its system calls counted (these barely depend on the machine's load; the times do).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSshServer } from '../fixtures/sshd';

const home = process.env.HOME_TREE ?? '/var/tmp/tabula-bench-100000/home';
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const SYSCALLS = !!process.env.SYSCALLS;
async function main() {
  const sshd = await startSshServer();
  const work = fs.mkdtempSync(path.join(process.env.WORK_DIR ?? '/var/tmp', 'tb-opts-'));
  const ctl = fs.mkdtempSync('/tmp/tbo-');
  try {
    const sshE = ['ssh', '-p', String(sshd.port), ...sshd.sshOptions, '-o', 'ControlMaster=auto', '-o', `ControlPath=${ctl}/cm-%C`, '-o', 'ControlPersist=60', ...(process.env.CIPHER ? ['-o', `Ciphers=${process.env.CIPHER}`] : [])].join(' ');
    const tabulaArgs = (drop: string[]) => {
      const all: [string, string[]][] = [
        ['noh', ['--no-h']],
        ['progress2', ['--info=progress2']],
        ['outformat', ['--out-format=%i|%l|%b|%n']],
        ['timeout', ['--timeout=120']],
        ['a', ['-a']],
        ['ignoretimes', ['--ignore-times']],
        ['noD', ['--no-D']],
        ['excludes', ['--exclude=/.tabula', '--exclude=.tabula-partial', '--exclude=/.tabula-storage']],
        ['ignoremissing', ['--ignore-missing-args']],
        ['partialdir', ['--partial-dir=.tabula-partial']],
        ['tempdir', ['--temp-dir=.tabula/tmp-h']],
        ['backup', ['--backup', '--backup-dir=.tabula/versions/x']],
      ];
      return all.filter(([k]) => !drop.includes(k)).flatMap(([, v]) => v);
    };
    const variants: [string, () => string[]][] = [
      ['rsync -a', () => ['-a']],
      ['tabula', () => tabulaArgs([])],
      // What engine.ts gives rsync onto an empty storage (startWalk, into the staging folder): no --backup,
      // --partial-dir or --temp-dir; --inplace.
      ['tabula onto empty', () => [...tabulaArgs(['backup', 'partialdir', 'tempdir']), '--inplace']],
      ...(process.env.DROPS ?? 'progress2,outformat,tempdir,backup,partialdir,backup+partialdir,tempdir+backup+partialdir').split(',').map((d): [string, () => string[]] => [`tabula -${d}`, () => tabulaArgs(d.split('+'))]),
    ];
    const res = new Map<string, number[][]>();
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...variants].reverse() : variants;
      for (const [name, args] of order) {
        const dst = path.join(work, 'dst');
        spawnSync('rm', ['-rf', dst]);
        fs.mkdirSync(path.join(dst, '.tabula/tmp-h'), { recursive: true });
        spawnSync('sync');
        const tf = path.join(work, 'time-local');
        const rf = path.join(work, 'time-remote');
        const a = args();
        const remote = SYSCALLS ? `strace -c -f -o ${rf} rsync` : `/usr/bin/time -o ${rf} -f '%e %U %S' rsync`;
        const r = spawnSync('/usr/bin/time', ['-o', tf, '-f', '%e %U %S', 'rsync', ...a, '-e', sshE, `--rsync-path=${remote}`, `${home}/`, `${sshd.user}@127.0.0.1:${dst}/`], { stdio: ['ignore', 'ignore', 'pipe'] });
        if (r.status !== 0) throw new Error(`${name}: ${r.status} ${r.stderr}`);
        const [e, u, s] = fs.readFileSync(tf, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
        const n = Number(spawnSync('sh', ['-c', `find ${dst} -type f | wc -l`]).stdout.toString());
        if (SYSCALLS) {
          // strace -c: the total line, and the calls that make most of the difference.
          const table = fs.readFileSync(rf, 'utf8');
          // Columns: % time, seconds, usecs/call, calls, errors (when any), name.
          const calls = Number(table.split('\n').find((l) => /\stotal$/.test(l))?.trim().split(/\s+/)[3]);
          const top5 = table.split('\n').filter((l) => /^\s*\d/.test(l) && !/total/.test(l)).map((l) => l.trim().split(/\s+/)).sort((x, y) => Number(y[3]) - Number(x[3])).slice(0, 6).map((f) => `${f[f.length - 1]} ${f[3]}`).join(', ');
          (res.get(name) ?? res.set(name, []).get(name)!).push([e!, u! + s!, calls, n]);
          console.log(`${name.padEnd(34)} storage system calls ${calls} (${top5}) files ${n}`);
          continue;
        }
        const [, ru, rs] = fs.readFileSync(rf, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
        (res.get(name) ?? res.set(name, []).get(name)!).push([e!, u! + s!, ru! + rs!, n]);
        console.log(`${name.padEnd(34)} wall ${e!.toFixed(2)} local cpu ${(u! + s!).toFixed(2)} (u ${u} s ${s}) storage cpu ${(ru! + rs!).toFixed(2)} files ${n} load ${os.loadavg()[0]!.toFixed(1)}`);
      }
    }
    console.log(`\nmean per variant: wall, local cpu, ${SYSCALLS ? 'storage system calls' : 'storage cpu'}`);
    for (const [name, rows] of res) {
      const m = (i: number) => (rows.reduce((x, r) => x + r[i]!, 0) / rows.length).toFixed(2);
      console.log(`${name.padEnd(34)} ${m(0)} ${m(1)} ${m(2)}`);
    }
  } finally {
    await sshd.dispose();
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(ctl, { recursive: true, force: true });
  }
}
void main();
