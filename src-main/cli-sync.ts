// The sync commands of `tabula`: one foreground sync without the agent, and the commands that ask the
// running agent (back up now, pause, resume, conflicts, versions and restore).
import fs from 'node:fs';
import path from 'node:path';
import type { AgentStatus, ApiClient, BackupRun } from './common/contract';
import type { SyncRunSummary } from './common/contract/sync';
import { TabulaError } from './common/errors';
import { safetyLine } from './common/safety-line';
import { loadConfigQuickly } from './core/config-layers';
import { agentSocketPath, displayPath, ensureRuntimeDir, ensureStateDir, type Paths } from './core/paths';
import { syncRunOptions } from './core/sync/options';
import { parseStorageUrl } from './core/storage-url';
import { syncThroughAgent } from './core/sync/through-agent';
import { plural, printDetails, printSyncFailure, printSyncSummary, syncHooks } from './sync-report';

export interface Args {
  words: string[];
  flags: Set<string>;
  values: Map<string, string>;
}

export function parseArgs(argv: string[], valueFlags: string[]): Args {
  const args: Args = { words: [], flags: new Set(), values: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (valueFlags.includes(a)) {
      const v = argv[++i];
      if (v === undefined) throw new TabulaError('invalid-argument', `${a} needs a value.`);
      args.values.set(a, v);
    } else if (a.startsWith('--')) args.flags.add(a);
    else args.words.push(a);
  }
  return args;
}

export function ago(iso: string | null): string {
  if (!iso) return 'never';
  const min = Math.round((Date.now() - Date.parse(iso)) / 60000);
  const when = new Date(iso).toLocaleString();
  return min < 1 ? `${when} (just now)` : min < 120 ? `${when} (${min} min ago)` : when;
}

export function formatStatus(s: AgentStatus): string {
  const b = s.backup;
  const safe = safetyLine(s, Date.now());
  const lines = [
    // The window's and the tray's first line, word for word: one answer to "is my work safe?".
    `Safety:  ${safe.sentence}${safe.detail ? `\n         ${safe.detail}` : ''}`,
    `Image:   ${s.image.name} — version ${s.image.version}${s.image.problem ? ` (${s.image.problem})` : ''}`,
    `Backup:  ${b.state} — ${b.reason}`,
    `         last success: ${ago(b.lastSuccessAt)}`,
    `Storage: ${b.storage}`,
  ];
  if (b.progress) lines.push(`         ${b.progress.phase} ${b.progress.percent}% (${b.progress.filesDone}/${b.progress.filesTotal ?? '?'} files)`);
  if (b.queuedChanges) lines.push(`Queued:  ${b.queuedChanges} changes waiting for the storage`);
  if (b.nextAttemptAt) lines.push(`Next:    ${new Date(b.nextAttemptAt).toLocaleString()}`);
  for (const c of b.conflicts) lines.push(`Conflict: ${c.path} (other version: ${c.conflictPath})`);
  for (const p of s.problems) lines.push(`Problem: ${p.message}`);
  return lines.join('\n');
}

async function backupNow(client: ApiClient, args: Args) {
  const force = args.flags.has('--force');
  if (args.flags.has('--no-wait')) {
    await client.call('backup.start', { force });
    console.log('Sync requested. Follow it with `tabula events` or `tabula status`.');
    return;
  }
  // Subscribe first and ask once the stream is live, so no event of this run is missed.
  const run = await new Promise<BackupRun>((resolve, reject) => {
    let requestedAt: string | null = null;
    const early: BackupRun[] = [];
    let asked = false;
    const finish = (r: BackupRun) => {
      unsubscribe();
      resolve(r);
    };
    const unsubscribe = client.subscribe(
      (e) => {
        if (e.type === 'backup-progress' && process.stderr.isTTY) {
          process.stderr.write(`\r${e.data.phase} ${e.data.percent}%  ${e.data.filesDone}/${e.data.filesTotal ?? '?'}  ${(e.data.currentFile ?? '').slice(-50).padEnd(50)}`);
        }
        if (e.type !== 'backup-finished') return;
        if (requestedAt === null) early.push(e.data);
        else if (e.data.startedAt >= requestedAt) finish(e.data);
      },
      () => {
        if (asked) return;
        asked = true;
        client.call('backup.start', { force }).then((r) => {
          requestedAt = r.requestedAt;
          const done = early.find((x) => x.startedAt >= r.requestedAt);
          if (done) finish(done);
        }, reject);
      },
    );
  });
  if (process.stderr.isTTY) process.stderr.write('\n');
  if (run.outcome === 'success') {
    console.log(`Synced with ${run.storage}: ${plural(run.pushed, 'file')} backed up, ${plural(run.pulled, 'file')} brought in, ${run.deleted} deleted${run.conflicts ? `, ${plural(run.conflicts, 'conflict')} (see \`tabula conflicts\`)` : ''}.`);
    return;
  }
  console.error(run.error?.message ?? 'The sync did not finish.');
  printDetails(run.error ?? null);
  if (run.error?.code === 'sync-refused' && !run.error.message.includes('--force')) console.error('If this is what you meant, go ahead with: tabula backup now --force');
  if (run.error?.code === 'storage-unreachable') console.error('Your request is queued and runs by itself when the storage is reachable again.');
  process.exitCode = run.error?.code === 'sync-refused' ? 2 : 1;
}

/** Commands answered by the running agent; false when the words are not one of them. */
/**
 * A path given on the command line: absolute or ~/ as it is; a relative one from the current folder
 * when it exists there, else from the home, so the home-relative paths `tabula conflicts` and
 * `tabula versions` print are accepted back from anywhere.
 */
export function homePath(p: string, home: string): string {
  if (path.isAbsolute(p)) return p;
  if (p === '~' || p.startsWith('~/')) return path.join(home, p.slice(1));
  const here = path.resolve(p);
  return fs.existsSync(here) && (here === home || here.startsWith(home + '/')) ? here : path.join(home, p);
}

export async function runAgentCommand(args: Args, agent: () => Promise<ApiClient>, home: string): Promise<boolean> {
  const json = args.flags.has('--json');
  const out = (value: unknown, text: string) => console.log(json ? JSON.stringify(value, null, 2) : text);
  const [w0, w1, w2] = args.words;
  const cmd = w0 === 'versions' || w0 === 'restore' ? w0 : w0 === 'conflicts' && w1 === 'resolve' ? 'conflicts resolve' : [w0, w1].filter(Boolean).join(' ');
  const needPath = () => {
    if (!w1) throw new TabulaError('invalid-argument', `Usage: tabula ${w0} PATH`);
    return homePath(w1, home);
  };
  switch (cmd) {
    case 'status':
    case 'backup status': {
      const s = await (await agent()).call('status.get', {});
      out(s, formatStatus(s));
      return true;
    }
    case 'events':
      (await agent()).subscribe((e) => console.log(JSON.stringify(e)));
      return true;
    case 'backup now':
      await backupNow(await agent(), args);
      return true;
    case 'backup pause':
    case 'backup resume': {
      const s = await (await agent()).call(w1 === 'pause' ? 'backup.pause' : 'backup.resume', {});
      out(s, s.paused ? 'Sync paused. Changes wait until `tabula backup resume`.' : 'Sync resumed.');
      return true;
    }
    case 'conflicts': {
      const list = (await (await agent()).call('status.get', {})).backup.conflicts;
      // Each version where it is now, and (when its record says) the laptop the storage's came from.
      const describe = (c: (typeof list)[number]) => {
        const [mine, theirs] = c.kept === 'local' ? [c.path, c.conflictPath] : [c.conflictPath, c.path];
        return `${c.path}\n  this laptop’s version: ${mine}\n  the storage’s version${c.from ? ` (from ${c.from})` : ''}: ${theirs}`;
      };
      out(list, list.length ? `${list.map(describe).join('\n')}\nSettle each with \`tabula conflicts resolve PATH --keep mine|theirs|both\` (PATH: the copy's name when a file has two).` : 'No conflicts.');
      return true;
    }
    case 'conflicts resolve': {
      const keep = args.values.get('--keep');
      if (!w2 || (keep !== 'mine' && keep !== 'theirs' && keep !== 'both')) throw new TabulaError('invalid-argument', 'Usage: tabula conflicts resolve PATH --keep mine|theirs|both');
      const r = await (await agent()).call('conflicts.resolve', { path: homePath(w2, home), keep });
      out(r, `Settled ${r.resolved}: kept ${keep === 'both' ? 'both versions' : keep === 'mine' ? 'this laptop’s version' : 'the storage’s version'}.`);
      return true;
    }
    case 'versions': {
      const target = needPath();
      const list = await (await agent()).call('versions.list', { path: target });
      if (!list.length) {
        if (json) console.log('[]');
        console.error(`The storage keeps no version of ${displayPath(target, home)}.`);
        process.exitCode = 1;
        return true;
      }
      out(list, list.map((v) => (v.replacedAt ? `${new Date(v.replacedAt).toLocaleString()}  (replaced then)` : 'current copy on the storage')).join('\n'));
      return true;
    }
    case 'restore': {
      const target = needPath();
      const at = args.values.get('--at');
      if (at && Number.isNaN(Date.parse(at))) throw new TabulaError('invalid-argument', `--at needs a date and time, e.g. 2026-11-22T09:30:00Z (got "${at}").`);
      const to = args.values.get('--to');
      const r = await (await agent()).call('versions.restore', { path: target, ...(at ? { at: new Date(at).toISOString() } : {}), ...(to ? { to } : {}) /* a relative one is inside the home */ });
      out(r, `Restored ${r.version.replacedAt ? `the version replaced at ${new Date(r.version.replacedAt).toLocaleString()}` : 'the storage’s current copy'} to ${r.restoredTo}.`);
      return true;
    }
    default:
      return false;
  }
}

/**
 * `tabula sync`: one run in the foreground (for scripts, login hooks and helpdesk), made by the agent when
 * it runs, else here. `agentAsked`: the agent was asked already (sync-client.ts) and will not make it.
 */
export async function syncForeground(args: Args, paths: Paths, agentAsked = false) {
  // A --storage that is no storage URL is a wrong command line, like a mistyped option: EX_USAGE.
  const storageArg = args.values.get('--storage');
  if (storageArg !== undefined) {
    try {
      parseStorageUrl(storageArg);
    } catch (err) {
      if (!(err instanceof TabulaError)) throw err;
      console.error(err.message);
      return void (process.exitCode = 64);
    }
  }
  const json = args.flags.has('--json');
  const force = args.flags.has('--force');
  // A person who runs one sync by hand wants the storage as it is, also after a change made on it
  // directly (an admin, a restore tool): list it in full. The agent's runs (every 15 minutes, a
  // fleet's idle cost) trust the generation record between daily checks; --quick does that here.
  const verify = args.flags.has('--verify') || !args.flags.has('--quick');
  try {
    // The agent runs for this user: the run is its own (its change journal, its kept ssh connection),
    // unless this one is not the agent's run (another home or storage, a dry run).
    const alone = agentAsked || args.values.has('--home') || args.values.has('--storage') || args.flags.has('--dry-run') || !fs.existsSync(paths.runtimeDir);
    if (!alone) ensureRuntimeDir(paths); // the user's own private folder, or nothing is sent to a socket in it
    const byAgent = alone ? null : await syncThroughAgent(agentSocketPath(paths), { force, verify }, syncHooks);
    printSyncSummary(byAgent ?? (await syncHere(args, paths, { force, verify, ...syncHooks })), json);
  } catch (err) {
    if (!(err instanceof TabulaError)) throw err;
    printSyncFailure(err, json);
  }
}

/** The run in this process (no agent, or not the agent's run). */
async function syncHere(args: Args, paths: Paths, run: { force: boolean; verify: boolean; onWaiting: (reason: string) => void; onProgress: (p: { phase: string; percent: number; filesDone: number; filesTotal: number | null }) => void }): Promise<SyncRunSummary> {
  // Without zod unless the config needs its verdict: `tabula sync` keeps to a small memory budget.
  const { config, problems } = await loadConfigQuickly(paths);
  for (const p of problems) console.error(`Warning: ${p.message}`);
  ensureStateDir(paths);
  ensureRuntimeDir(paths);
  const { options } = syncRunOptions(paths, config, { home: path.resolve(args.values.get('--home') ?? paths.home), storageUrl: args.values.get('--storage') });
  // ssh keeps its shared connection's socket there (the agent makes the folder; this may run without it).
  fs.mkdirSync(paths.runtimeDir, { recursive: true, mode: 0o700 });
  // Loaded here, not with the other commands (they ask the running agent and need none of it).
  const { runSync } = await import('./core/sync/engine');
  return runSync({ ...options, ...run, dryRun: args.flags.has('--dry-run') });
}
