// `tabula sync` on its own: the foreground sync loads only the sync engine and the config, not the
// agent, the window's server, image or prefs code (bin/tabula.js picks this bundle when the first word
// is `sync`). Memory is the reason: the whole CLI costs ~25 MiB more before it does anything.
// While the agent runs, the run is the agent's: bin/tabula.js asks it first with a bundle of its own
// (sync-client.ts) and loads this one only when the run is made here. Even then the engine, the config
// and the command line's grammar load only once needed (esbuild keeps what import() names unloaded).
import { TabulaError } from './common/errors';

const EX_USAGE = 64;

// A sync reads millions of short-lived records and keeps almost none (issue 9: 64 MiB at 1M files, the
// whole process; Node alone is 40). Measured on a 100,000-file home, peak of a first sync / a 1% run:
// - young generation kept at its starting size: left to itself V8 grows it to 32 MiB for such work;
// - old generation grown by 10% over what survives a collection, not 2-4×: 92 → 74 / 97 → 70 MiB;
// - no optimizing compiler (the baseline one only): its code pages in the node binary and its working
//   memory cost ~10 MiB, 74 → 62 / 70 → 60 MiB, for ~1 s more processor time in a 1% run (a first
//   sync's time is rsync's). Only for a run made here, a process that ends; the agent keeps the defaults.
const SYNC_V8_FLAGS = ['--semi-space-growth-factor=1', '--heap-growing-percent=10', '--max-opt=1'];

async function main(argv: string[]) {
  // Not import(): esbuild leaves a builtin's import() to Node's ES module loader, slower to start.
  const v8 = process.getBuiltinModule('node:v8');
  for (const flag of SYNC_V8_FLAGS) v8.setFlagsFromString(flag);
  const [{ matchCommand }, { parseArgs, syncForeground }, { resolvePaths }] = await Promise.all([import('./cli-commands'), import('./cli-sync'), import('./core/paths')]);
  const matched = matchCommand(argv);
  if ('error' in matched) {
    console.error(matched.error);
    return void (process.exitCode = EX_USAGE);
  }
  // The agent was asked already when it could make this run (bin/tabula.js, sync-client.ts).
  await syncForeground(parseArgs(argv, ['--port', '--home', '--storage', '--keep', '--at', '--to']), resolvePaths(), true);
}

process.umask(0o077); // only ever the main thread: bin/tabula.js runs this bundle
main(process.argv.slice(2)).catch((err) => {
  console.error(err instanceof TabulaError ? err.message : `tabula: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
