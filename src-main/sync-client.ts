// `tabula sync` while the agent runs: the agent makes the run (`sync.run` over its socket) with its
// change journal and its kept ssh connection, so this process needs none of the sync engine, the
// config or zod. Nothing changed is ~0.02 s of the agent's; Node's own start here is 0.09-0.14 s of
// the 0.15 s such a run may take (issue 9), so this is a bundle of its own (build/main/sync-client.js,
// ~20 KB, which bin/tabula.js loads first) and loads only Node's fs, os, path and net. The sync bundle
// (sync.js, ~190 KB: ~0.01 s more to read and compile) is loaded only when the run is made here.
import fs from 'node:fs';
import { TabulaError } from './common/errors';
import { agentSocketPath, ensureRuntimeDir, resolvePaths } from './core/paths';
import { syncThroughAgent } from './core/sync/through-agent';
import { printSyncFailure, printSyncSummary, syncHooks } from './sync-report';

/** The options a run of the agent takes; any other word or option (another home or storage, a dry run, a typo) is for the full command. */
const AGENT_OPTIONS = new Set(['--quick', '--verify', '--force', '--json']);

/**
 * True when the running agent made the run (or it failed there): its end is printed and the exit code
 * set. False when it is not the agent's run, or no agent of this user answers, or it will not run one
 * (paused): then the run is made in this process, as before.
 */
export async function syncByAgent(argv: string[]): Promise<boolean> {
  const [word, ...options] = argv;
  if (word !== 'sync' || !options.every((o) => AGENT_OPTIONS.has(o))) return false;
  const paths = resolvePaths();
  if (!fs.existsSync(paths.runtimeDir)) return false; // no agent has run for this user
  const json = options.includes('--json');
  // By hand the storage is listed in full, unless --quick (cli-sync.ts says why).
  const args = { force: options.includes('--force'), verify: options.includes('--verify') || !options.includes('--quick') };
  try {
    ensureRuntimeDir(paths); // the user's own private folder, or nothing is sent to a socket in it
    const summary = await syncThroughAgent(agentSocketPath(paths), args, syncHooks);
    if (!summary) return false;
    printSyncSummary(summary, json);
  } catch (err) {
    if (!(err instanceof TabulaError)) throw err;
    printSyncFailure(err, json);
  }
  return true;
}

/** bin/tabula.js's way in: true when the agent made the run (or said why not); any other failure printed as sync-main.ts prints it. */
export function runByAgent(argv: string[]): Promise<boolean> {
  process.umask(0o077); // only ever the main thread, as sync-main.ts
  return syncByAgent(argv).catch((err: unknown) => {
    console.error(err instanceof TabulaError ? err.message : `tabula: ${err instanceof Error ? err.stack : String(err)}`);
    process.exit(1);
  });
}
