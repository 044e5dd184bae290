// `tabula`: the headless agent (`--headless`), the launcher behind `npm start` (`--launch`), and the
// commands that talk to a running agent through the token file in $XDG_RUNTIME_DIR/tabula.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createHttpClient } from './common/clients';
import type { AgentEvent, AgentStatus, ApiClient, BackupRun } from './common/contract';
import { TabulaError } from './common/errors';
import { imageUsage, runImageCommand } from './cli-image';
import { createAgent } from './core/agent';
import { writeFileAtomic } from './core/atomic-file';
import { startHttpServer } from './core/http-server';
import { resolvePaths } from './core/paths';

const usage = `Usage:
  tabula --headless [--port N]   run the agent and serve the window on http://127.0.0.1
  tabula status [--json]         image version and backup state
  tabula backup now [--no-wait]  back up the home folder now, showing progress
  tabula events                  follow the agent's event stream (one JSON object a line)
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

async function headless(port: number) {
  const existing = await runningAgent();
  if (existing) {
    console.log(`Tabula is already running: ${fs.readFileSync(endpointFile, 'utf8').trim()}/#token=${fs.readFileSync(tokenFile, 'utf8').trim()}`);
    return;
  }
  const agent = createAgent();
  const server = await startHttpServer({ router: agent.router, events: agent.events, staticDir: rendererDir, port });
  fs.mkdirSync(paths.runtimeDir, { recursive: true, mode: 0o700 });
  writeFileAtomic(tokenFile, server.token + '\n', 0o600);
  writeFileAtomic(endpointFile, server.url + '\n', 0o600);
  const status = agent.status();
  console.log(`Tabula — ${status.image.name} ${status.image.version} — headless agent running.`);
  console.log(`Open ${server.url}/#token=${server.token}`);
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

/** The Electron binary, fetched on first use where the registry can provide it; null when it cannot. */
function findElectron(): string | null {
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
  const args = [path.join(__dirname, 'shell.js'), ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])];
  const child = spawn(electron, args, { stdio: 'inherit' });
  child.on('exit', (code) => process.exit(code ?? 0));
}

function ago(iso: string | null): string {
  if (!iso) return 'never';
  const min = Math.round((Date.now() - Date.parse(iso)) / 60000);
  const when = new Date(iso).toLocaleString();
  return min < 1 ? `${when} (just now)` : min < 120 ? `${when} (${min} min ago)` : when;
}

function formatStatus(s: AgentStatus): string {
  const lines = [
    `Image:   ${s.image.name} — version ${s.image.version}${s.image.problem ? ` (${s.image.problem})` : ''}`,
    `Backup:  ${s.backup.state} — ${s.backup.reason}`,
    `         last success: ${ago(s.backup.lastSuccessAt)}`,
    `Storage: ${s.backup.storage}`,
  ];
  if (s.backup.progress) lines.push(`         ${s.backup.progress.percent}% (${s.backup.progress.filesDone}/${s.backup.progress.filesTotal ?? '?'} files)`);
  for (const p of s.problems) lines.push(`Problem: ${p.message}`);
  return lines.join('\n');
}

async function backupNow(wait: boolean) {
  const client = await requireAgent();
  if (!wait) {
    const { runId } = await client.call('backup.start', {});
    console.log(`Backup started (${runId}). Follow it with \`tabula events\` or \`tabula status\`.`);
    return;
  }
  // Subscribe first and start once the stream is live, so no event of this run is missed.
  const finished = new Promise<BackupRun>((resolve, reject) => {
    let runId: string | null = null;
    let started = false;
    const early: BackupRun[] = [];
    const unsubscribe = client.subscribe(
      (e: AgentEvent) => {
        if (e.type === 'backup-progress' && process.stderr.isTTY) {
          process.stderr.write(`\r${e.data.percent}%  ${e.data.filesDone}/${e.data.filesTotal ?? '?'} files  ${(e.data.currentFile ?? '').slice(-50).padEnd(50)}`);
        }
        if (e.type === 'backup-finished') {
          if (runId === null) early.push(e.data);
          else if (e.data.id === runId) {
            unsubscribe();
            resolve(e.data);
          }
        }
      },
      () => {
        if (started) return;
        started = true;
        client.call('backup.start', {}).then(({ runId: id }) => {
          runId = id;
          const done = early.find((r) => r.id === id);
          if (done) {
            unsubscribe();
            resolve(done);
          }
        }, reject);
      },
    );
  });
  const run = await finished;
  if (process.stderr.isTTY) process.stderr.write('\n');
  if (run.outcome === 'success') {
    console.log(`Backed up to ${run.storage}: ${run.filesTransferred} ${run.filesTransferred === 1 ? 'file' : 'files'} copied (${run.bytesTransferred} bytes).`);
  } else {
    console.error(run.error?.message ?? 'The backup did not finish.');
    for (const d of run.error?.details ?? []) console.error(`  ${d}`);
    process.exitCode = 1;
  }
}

async function main(argv: string[]) {
  const flag = (name: string) => argv.includes(name);
  const portArg = argv.indexOf('--port');
  const port = portArg >= 0 ? Number(argv[portArg + 1]) : 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TabulaError('invalid-argument', `--port needs a number from 0 to 65535.`);
  const words = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--port');

  if (flag('--version')) return console.log('tabula 0.1.0');
  if (flag('--headless')) return headless(port);
  if (flag('--launch')) return launch(port);
  switch (words.join(' ')) {
    case 'status': {
      const s = await (await requireAgent()).call('status.get', {});
      return console.log(flag('--json') ? JSON.stringify(s, null, 2) : formatStatus(s));
    }
    case 'backup now':
      return backupNow(!flag('--no-wait'));
    case 'events': {
      (await requireAgent()).subscribe((e) => console.log(JSON.stringify(e)));
      return;
    }
    default:
      if (words[0] === 'image' || words.join(' ') === 'fleet poll') {
        const code = await runImageCommand(await requireAgent(), words, flag('--json'));
        if (code !== 64) return void (process.exitCode = code);
      }
      console.error(usage);
      process.exit(flag('--help') || words.length === 0 ? 0 : 64);
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err instanceof TabulaError ? err.message : `tabula: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
