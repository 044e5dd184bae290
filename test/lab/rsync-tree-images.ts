// The rsync-tree laptop's image versions: a tree each, made from the cached base (image.ts
// makeImageTree) with the lab's boot settings. Image 1 is made in the lab's own process before the
// laptop exists; images 2-4 in a child process (this file, run with TABULA_LAB_IMAGE_JOB) while the
// laptop boots for the first time, at a low priority so the guest's boot goes first. Each is
// published only when its scenario needs it (the channel must name them in order).
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { leanBoot, leanServices, makeImageTree, type LabImageSettings } from './image';

export interface ImageSpec {
  base: string;
  dest: string;
  version: string;
  settings: LabImageSettings & { deb: string | null };
  /**
   * The tries of a new version (kernel-install's /etc/kernel/tries, read by tabula-helper from the
   * new image): two for the images that should start, so that a crash of the emulator's (session 9:
   * a kernel Oops, int3 in sched_clock_cpu, 4 s into a boot under TCG with two virtual CPUs) spends
   * a try, not the version; one for the broken image of (f), which falls back after one failed boot.
   * A fleet keeps the default 3.
   */
  tries: number;
  /** Files the version adds or replaces (image 2's new file, image 3's broken systemd). */
  files?: { path: string; text: string; mode?: number }[];
}

export function buildImage(s: ImageSpec): string {
  return makeImageTree(s.base, s.dest, s.version, s.settings, (t) => {
    fs.writeFileSync(path.join(t, 'etc/kernel/tries'), `${s.tries}\n`);
    leanBoot(t);
    leanServices(t);
    // The lab drives the laptop over ssh, as root between long pauses: logind stopped root's user
    // manager 10 s after each of its sessions ended, and the next login started it again (7 s of a
    // TCG guest's processor, session 11). Kept once started (lab only: a laptop's root seldom logs in).
    fs.mkdirSync(path.join(t, 'etc/systemd/logind.conf.d'), { recursive: true });
    fs.writeFileSync(path.join(t, 'etc/systemd/logind.conf.d/tabula-lab.conf'), '[Login]\nUserStopDelaySec=infinity\n');
    for (const f of s.files ?? []) {
      fs.writeFileSync(path.join(t, f.path), f.text);
      if (f.mode !== undefined) fs.chmodSync(path.join(t, f.path), f.mode);
    }
    // /etc comes fresh from the image at every boot: without these marks every boot ran
    // ldconfig and the journal catalog's rebuild (ConditionNeedsUpdate, no /etc/.updated), ~5 s a boot under TCG.
    execFileSync('chroot', [t, '/usr/lib/systemd/systemd-update-done']);
  });
}

/**
 * Builds `specs` one after another in a child process (nice 19); `ready(version)` resolves with the
 * tree once that one is made, or rejects with the child's error.
 */
export function buildImagesInBackground(specs: ImageSpec[], jobFile: string): { ready(version: string): Promise<string>; stop(): void } {
  fs.writeFileSync(jobFile, JSON.stringify(specs));
  const child = spawn('nice', ['-n', '19', process.execPath, path.resolve(__dirname, '../../node_modules/vite-node/vite-node.mjs'), __filename], {
    env: { ...process.env, TABULA_LAB_IMAGE_JOB: jobFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const built = new Set<string>();
  const waiting = new Map<string, { resolve: (tree: string) => void; reject: (err: Error) => void }[]>();
  let failure: Error | null = null;
  const settle = () => {
    for (const [v, ws] of waiting) {
      const spec = specs.find((s) => s.version === v);
      if (spec && built.has(v)) ws.forEach((w) => w.resolve(spec.dest));
      else if (failure) ws.forEach((w) => w.reject(failure!));
      else continue;
      waiting.delete(v);
    }
  };
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    for (const m of out.matchAll(/^built (\S+)$/gm)) built.add(m[1]!);
    settle();
  });
  child.once('exit', (code, signal) => {
    if (specs.some((s) => !built.has(s.version))) failure = new Error(`building the image versions in the background failed (exit ${code ?? signal}):\n${stderr.trim().split('\n').slice(-20).join('\n')}`);
    settle();
  });
  return {
    ready: (version) =>
      new Promise((resolve, reject) => {
        waiting.set(version, [...(waiting.get(version) ?? []), { resolve, reject }]);
        settle();
      }),
    stop: () => void (child.exitCode === null && child.kill('SIGKILL')),
  };
}

const job = process.env.TABULA_LAB_IMAGE_JOB;
if (job) {
  for (const spec of JSON.parse(fs.readFileSync(job, 'utf8')) as ImageSpec[]) {
    buildImage(spec);
    process.stdout.write(`built ${spec.version}\n`);
  }
}
