// `tabula`: the agent (`agent`, what the user service runs; `--headless` for a person at a
// terminal), the tray (`tray`), the launcher behind `npm start` (`--launch`), and the commands that
// talk to the running agent over its socket, $XDG_RUNTIME_DIR/tabula/agent.sock.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { ApiClient } from './common/contract';
import { parseArgs, runAgentCommand } from './cli-sync';
import { helpFor, matchCommand, usageText } from './cli-commands';
import { TabulaError } from './common/errors';
import { imageLabel } from './common/image-label';
import { forgetAgentAddress, keptPort, keptToken, readAgentAddress, writeAgentAddress } from './core/agent-address';
import { agentSocketPath, ensureRuntimeDir, resolvePaths } from './core/paths';
import { version } from '../package.json';
// The agent, its socket and window server, the preferences and image commands are loaded by the
// commands that use them (import() below): `tabula --version` and help evaluate none of them (nor the
// schemas they bring), and the commands that ask the running agent only its client.

const paths = resolvePaths();
const socketPath = agentSocketPath(paths);
const rendererDir = path.join(__dirname, '..', 'renderer');

async function connect(): Promise<ApiClient | null> {
  return (await import('./core/agent-socket')).connectAgent(paths);
}

async function runningAgent(): Promise<ApiClient | null> {
  const client = await connect();
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
  console.error(
    'Tabula is not running: no agent answers on its socket. It runs as your user service: `systemctl --user start tabula-agent` (or `tabula agent`, or `npm start` from a checkout), then try again.',
  );
  process.exit(3);
}

/**
 * Runs the agent in this process: the socket for the CLI and the tray, and the window on 127.0.0.1
 * behind a token. `--headless` (a person at a terminal) prints the window's address with its token;
 * `agent` (the user service, whose output goes to the journal) never prints the token.
 * Resolves once the agent serves; false when another agent already runs for this user.
 */
async function headless(port: number, asService = false): Promise<boolean> {
  const existing = await runningAgent();
  if (existing) {
    if (asService) {
      console.error(`Another Tabula agent is already running for this user (${socketPath}); this one exits.`);
      return false;
    }
    const address = readAgentAddress(paths);
    console.log(address ? `Tabula is already running: ${address.baseUrl}/#token=${address.token}` : `Tabula is already running (${socketPath}), without a window address.`);
    return false;
  }
  ensureRuntimeDir(paths); // before anything starts: an unsafe folder means no agent at all
  const [{ createAgent }, { startHttpServer }, { serveAgentSocket }] = await Promise.all([import('./core/agent'), import('./core/http-server'), import('./core/agent-socket')]);
  const agent = createAgent({ watchDisplays: true });
  const socket = await serveAgentSocket({ router: agent.router, events: agent.events, socketPath, staticDir: rendererDir }).catch(async (err) => {
    await agent.shutdown();
    throw err;
  });
  // Any free port (--port 0) means the previous run's when it is free: an open window follows a restart.
  const serve = (p: number) => startHttpServer({ router: agent.router, events: agent.events, staticDir: rendererDir, port: p, token: keptToken(paths) });
  const kept = port === 0 ? keptPort(paths) : undefined;
  const server = await (kept ? serve(kept).catch(() => serve(0)) : serve(port));
  writeAgentAddress(paths, { baseUrl: server.url, token: server.token });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await agent.shutdown();
    await socket.close();
    await server.close();
    forgetAgentAddress(paths, server.url);
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // Ready only now that a stop is handled: whoever waits for these lines may stop it at once.
  const status = agent.status();
  if (asService) {
    console.log(`Tabula agent ${status.agentVersion} running — ${imageLabel(status.image)}.`);
    console.log(`Clients connect to ${socketPath}; the window is at ${server.url} (token in ${path.join(paths.runtimeDir, 'token')}).`);
  } else {
    console.log(`Tabula — ${imageLabel(status.image)} — headless agent running.`);
    console.log(`Open ${server.url}/#token=${server.token}`);
  }
  for (const p of status.problems) console.log(`Warning: ${p.message}`);
  return true;
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

/**
 * `tabula agent`, the user service. An unsafe runtime folder or socket will not fix itself: exit 78
 * (EX_CONFIG), which the unit lists in RestartPreventExitStatus, instead of a restart every 5 s.
 */
async function runService(port: number) {
  try {
    await headless(port, true);
  } catch (err) {
    if (!(err instanceof TabulaError && err.code === 'unsafe-folder')) throw err;
    console.error(`${err.message}\nThe Tabula agent does not start until this is fixed.`);
    process.exit(78);
  }
}

/** `npm start`: the tray as a client, with an agent in this process when none runs yet. */
async function launch(port: number) {
  const electron = findElectron();
  if (!electron) {
    console.log('The Electron runtime is missing (it could not be downloaded here), so Tabula starts in headless mode instead.');
    return void (await headless(port));
  }
  const hosting = await headless(port);
  startTray(electron, hosting);
}

function startTray(electron: string, hostingAgent = false) {
  const args = [path.join(__dirname, 'shell.js'), ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])];
  // The CLI itself may run on Electron as Node (the packaged launcher); the tray must not.
  const env = { ...process.env };
  delete env.ELECTRON_RUN_AS_NODE;
  const child = spawn(electron, args, { stdio: 'inherit', env });
  child.on('exit', (code) => {
    if (hostingAgent) console.log('The tray closed; the agent keeps running here (Ctrl-C stops it).');
    else process.exit(code ?? 0);
  });
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
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error('--port needs a number from 0 to 65535.');
    return void (process.exitCode = EX_USAGE);
  }
  if (args.flags.has('--version')) return console.log(`tabula ${version}`);
  if (args.flags.has('--headless')) return void (await headless(port));
  if (args.words.join(' ') === 'agent') return runService(port);
  if (args.words.join(' ') === 'tray') return tray();
  if (args.flags.has('--launch')) return launch(port);
  if (args.words[0] === 'prefs') {
    process.exitCode = await (await import('./cli-prefs')).runPrefsCommand(argv, runningAgent);
    return;
  }
  if (args.words[0] === 'image' || args.words.join(' ') === 'fleet poll') {
    const code = await (await import('./cli-image')).runImageCommand(await requireAgent(), args.words, args.flags.has('--json'));
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
