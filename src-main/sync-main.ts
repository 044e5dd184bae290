// `tabula sync` on its own: the foreground sync loads only the sync engine and the config, not the
// agent, the window's server, image or prefs code (bin/tabula.js picks this bundle when the first word
// is `sync`). Memory is the reason: the whole CLI costs ~25 MiB more before it does anything.
import { parseArgs, syncForeground } from './cli-sync';
import { matchCommand } from './cli-commands';
import { TabulaError } from './common/errors';
import { resolvePaths } from './core/paths';
import { isMainThread } from 'node:worker_threads';

const EX_USAGE = 64;

async function main(argv: string[]) {
  const matched = matchCommand(argv);
  if ('error' in matched) {
    console.error(matched.error);
    return void (process.exitCode = EX_USAGE);
  }
  await syncForeground(parseArgs(argv, ['--port', '--home', '--storage', '--keep', '--at', '--to']), resolvePaths());
}

if (isMainThread) process.umask(0o077);
main(process.argv.slice(2)).catch((err) => {
  console.error(err instanceof TabulaError ? err.message : `tabula: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
