// `tabula`: the headless agent (`--headless`), the launcher behind `npm start` (`--launch`), and the
// commands that talk to a running agent through the token file in $XDG_RUNTIME_DIR/tabula.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createHttpClient } from './common/clients';
import type { ApiClient } from './common/contract';
import { parseArgs, runAgentCommand, syncForeground } from './cli-sync';
import { helpFor, matchCommand, usageText } from './cli-commands';
import { TabulaError } from './common/errors';
import { runPrefsCommand } from './cli-prefs';
import { runImageCommand } from './cli-image';
import { createAgent } from './core/agent';
import { forgetAgentAddress, keptToken, readAgentAddress, writeAgentAddress } from './core/agent-address';
import { startHttpServer } from './core/http-server';
import { ensureRuntimeDir, resolvePaths } from './core/paths';

const paths = resolvePaths();
const rendererDir = path.join(__dirname, '..', 'renderer');

function connect(): ApiClient | null {
  const address = readAgentAddress(paths);
  return address && createHttpClient(address);
}

async function runningAgent(): Promise<ApiClient | null> {
  const client = connect();
  if (!client) return null;
  try {
    await client.call('status.get', {});
    return client;
  } catch {
    return null;
  }
}

async function requireAgent(): Promise<ApiClient> {
  const client = await runningAgent();
  if (client) return client;
  console.error('Tabula is not running. Start it with `tabula --headless` (or `npm start` from a checkout), then try again.');
  process.exit(3);
}

/**
 * `--headless` (a person at a terminal) prints the window's address with its token; `agent` (the user
 * service, whose output goes to the journal) never prints the token.
 */
async function headless(port: number, asService = false) {
  const existing = await runningAgent();
  if (existing) {
    if (asService) {
      console.error('Another Tabula agent is already running for this user; this one exits.');
      process.exit(0);
    }
    const { baseUrl, token } = readAgentAddress(paths)!;
    console.log(`Tabula is already running: ${baseUrl}/#token=${token}`);
    return;
  }
  ensureRuntimeDir(paths); // before anything starts: an unsafe folder means no agent at all
  const agent = createAgent({ watchDisplays: true });
  const server = await startHttpServer({ router: agent.router, events: agent.events, staticDir: rendererDir, port, token: keptToken(paths) });
  writeAgentAddress(paths, { baseUrl: server.url, token: server.token });
  const status = agent.status();
  console.log(`Tabula — ${status.image.name} ${status.image.version} — headless agent running.`);
  if (asService) console.log(`Window: ${server.url} (token in ${path.join(paths.runtimeDir, 'token')})`);
  else console.log(`Open ${server.url}/#token=${server.token}`);
  for (const p of status.problems) console.log(`Warning: ${p.message}`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await agent.shutdown();
    await server.close();
    forgetAgentAddress(paths, server.url);
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/**
 * The Electron binary: the one shipped in the Debian package (/usr/lib/tabula/electron), else the
 * npm package's, fetched on first use where the registry can provide it; null when there is none.
 */
function findElectron(): string | null {
  const packaged = path.join(__dirname, '..', '..', 'electron', 'electron');
  if (fs.existsSync(packaged)) return packaged;
  let dir: string;
  try {
    dir = path.dirname(require.resolve('electron/package.json'));
  } catch {
    return null;
  }
  const binary = () => {
    try {
      const full = path.join(dir, 'dist', fs.readFileSync(path.join(dir, 'path.txt'), 'utf8').trim());
      return fs.existsSync(full) ? full : null;
    } catch {
      return null;
    }
  };
  if (!binary()) spawnSync(process.execPath, [path.join(dir, 'install.js')], { stdio: 'ignore', timeout: 300_000 });
  return binary();
}

async function launch(port: number) {
  const electron = findElectron();
  if (!electron) {
    console.log('The Electron runtime is missing (it could not be downloaded here), so Tabula starts in headless mode instead.');
    return headless(port);
  }
  startTray(electron);
}

function startTray(electron: string) {
  const args = [path.join(__dirname, 'shell.js'), ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])];
  // The CLI itself may run on Electron as Node (the packaged launcher); the tray must not.
  const env = { ...process.env };
  delete env.ELECTRON_RUN_AS_NODE;
  const child = spawn(electron, args, { stdio: 'inherit', env });
  child.on('exit', (code) => process.exit(code ?? 0));
}

/** Exit code for a command line that is wrong (sysexits EX_USAGE). */
const EX_USAGE = 64;

function tray() {
  const electron = findElectron();
  if (electron) return startTray(electron);
  console.log('The tray needs the Electron runtime, which is not installed here. The agent runs without it: see `tabula status` and `tabula --headless`.');
}

async function main(argv: string[]) {
  if (argv.length === 0) return console.log(usageText());
  if (argv[0] === 'help' || argv.includes('--help')) {
    const words = argv.filter((a) => !a.startsWith('-') && a !== 'help');
    const text = helpFor(words);
    if (text) return console.log(text);
    console.error(`No command "${words.join(' ')}". Try \`tabula help\`.`);
    return void (process.exitCode = EX_USAGE);
  }
  const matched = matchCommand(argv);
  if ('error' in matched) {
    console.error(matched.error);
    return void (process.exitCode = EX_USAGE);
  }
  const args = parseArgs(argv, ['--port', '--home', '--storage', '--keep', '--at', '--to']);
  const port = Number(args.values.get('--port') ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TabulaError('invalid-argument', `--port needs a number from 0 to 65535.`);
  if (args.flags.has('--version')) return console.log('tabula 0.1.0');
  if (args.flags.has('--headless')) return headless(port);
  if (args.words.join(' ') === 'agent') return headless(port, true);
  if (args.words.join(' ') === 'tray') return tray();
  if (args.flags.has('--launch')) return launch(port);
  if (args.words[0] === 'sync') return syncForeground(args, paths);
  if (args.words[0] === 'prefs') {
    process.exitCode = await runPrefsCommand(argv, runningAgent);
    return;
  }
  if (args.words[0] === 'image' || args.words.join(' ') === 'fleet poll') {
    const code = await runImageCommand(await requireAgent(), args.words, args.flags.has('--json'));
    if (code !== 64) return void (process.exitCode = code);
  }
  const done = await runAgentCommand(args, requireAgent, paths.home);
  if (!done) {
    console.error(`Unknown command. Try \`tabula help\`.`);
    process.exitCode = EX_USAGE;
  }
}

// Whatever Tabula creates (state naming the user's files, runtime files, temp folders) is the
// user's alone; files that must keep a mode (rsync -a, restores) carry it explicitly.
process.umask(0o077);
main(process.argv.slice(2)).catch((err) => {
  console.error(err instanceof TabulaError ? err.message : `tabula: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
