// `tabula`: the headless agent (`--headless`), the launcher behind `npm start` (`--launch`), and the
// commands that talk to a running agent through the token file in $XDG_RUNTIME_DIR/tabula.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createHttpClient } from './common/clients';
import type { ApiClient } from './common/contract';
import { parseArgs, runAgentCommand, syncForeground, syncUsage } from './cli-sync';
import { TabulaError } from './common/errors';
import { runPrefsCommand, prefsUsage } from './cli-prefs';
import { imageUsage, runImageCommand } from './cli-image';
import { createAgent } from './core/agent';
import { writeFileAtomic } from './core/atomic-file';
import { startHttpServer } from './core/http-server';
import { resolvePaths } from './core/paths';

const usage = `Usage:
  tabula agent [--port N]          run the agent in the foreground (what the user service runs)
  tabula --headless [--port N]     print the window's address, starting an agent when none runs
  tabula tray                      the tray icon and window (needs the Electron runtime)
  tabula status [--json]           image version and sync state
  tabula events                    follow the agent's event stream (one JSON object a line)
${syncUsage}
${prefsUsage}
${imageUsage}
  tabula --version`;

const paths = resolvePaths();
const tokenFile = path.join(paths.runtimeDir, 'token');
const endpointFile = path.join(paths.runtimeDir, 'endpoint');
const rendererDir = path.join(__dirname, '..', 'renderer');

function connect(): ApiClient | null {
  try {
    const baseUrl = fs.readFileSync(endpointFile, 'utf8').trim();
    const token = fs.readFileSync(tokenFile, 'utf8').trim();
    return createHttpClient({ baseUrl, token });
  } catch {
    return null;
  }
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
    console.log(`Tabula is already running: ${fs.readFileSync(endpointFile, 'utf8').trim()}/#token=${fs.readFileSync(tokenFile, 'utf8').trim()}`);
    return;
  }
  const agent = createAgent({ watchDisplays: true });
  const server = await startHttpServer({ router: agent.router, events: agent.events, staticDir: rendererDir, port });
  fs.mkdirSync(paths.runtimeDir, { recursive: true, mode: 0o700 });
  writeFileAtomic(tokenFile, server.token + '\n', 0o600);
  writeFileAtomic(endpointFile, server.url + '\n', 0o600);
  const status = agent.status();
  console.log(`Tabula — ${status.image.name} ${status.image.version} — headless agent running.`);
  if (asService) console.log(`Window: ${server.url} (token in ${tokenFile})`);
  else console.log(`Open ${server.url}/#token=${server.token}`);
  for (const p of status.problems) console.log(`Warning: ${p.message}`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await agent.shutdown();
    await server.close();
    // Only remove the files if they are still ours (another agent may have started since).
    if (fs.readFileSync(tokenFile, 'utf8').trim() === server.token) {
      fs.rmSync(tokenFile, { force: true });
      fs.rmSync(endpointFile, { force: true });
    }
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

function tray() {
  const electron = findElectron();
  if (electron) return startTray(electron);
  console.log('The tray needs the Electron runtime, which is not installed here. The agent runs without it: see `tabula status` and `tabula --headless`.');
}

async function main(argv: string[]) {
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
  const done = await runAgentCommand(args, requireAgent);
  if (!done) {
    console.error(usage);
    process.exit(args.flags.has('--help') || args.words.length === 0 ? 0 : 64);
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err instanceof TabulaError ? err.message : `tabula: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
