// Where a running agent can be reached: `endpoint` (its http://127.0.0.1:PORT) and `token` in the
// verified runtime folder. The CLI sends nothing before the folder, both files (the user's own,
// mode 0600, regular) and the address (plain http on loopback) check out: a planted endpoint must
// never receive the token or a Wi-Fi password.
import fs from 'node:fs';
import path from 'node:path';
import { TabulaError } from '../common/errors';
import { readSmallRegularFile, writeFileAtomic } from './atomic-file';
import { ensureRuntimeDir, type Paths } from './paths';

export interface AgentAddress {
  baseUrl: string;
  token: string;
}

const files = (paths: Paths) => ({ endpoint: path.join(paths.runtimeDir, 'endpoint'), token: path.join(paths.runtimeDir, 'token'), port: path.join(paths.runtimeDir, 'window-port') });

function readPrivate(file: string): string | null {
  const r = readSmallRegularFile(file, { privateTo: process.getuid!(), maxBytes: 4096 });
  if (r.status === 'invalid') throw new TabulaError('unsafe-folder', `${file} ${r.problem}. Tabula sends nothing to the agent it names; remove the file and start Tabula again.`);
  return r.status === 'ok' ? r.data.toString('utf8').trim() : null;
}

/** The recorded agent, null when none is recorded; throws (sending nothing) when anything is off. */
export function readAgentAddress(paths: Paths): AgentAddress | null {
  if (!fs.existsSync(paths.runtimeDir) && !isSymlink(paths.runtimeDir)) return null;
  ensureRuntimeDir(paths);
  const f = files(paths);
  const baseUrl = readPrivate(f.endpoint);
  const token = readPrivate(f.token);
  if (baseUrl === null || token === null) return null;
  if (!isLoopbackHttp(baseUrl)) {
    throw new TabulaError('unsafe-folder', `${f.endpoint} names ${JSON.stringify(baseUrl.slice(0, 100))}, which is not an http address on this computer (127.0.0.1). Tabula sends nothing there.`);
  }
  return { baseUrl, token };
}

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** `http://127.x.x.x:PORT` or `http://[::1]:PORT`, nothing more (no user, path, query). */
export function isLoopbackHttp(text: string): boolean {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return false;
  }
  const loopback = /^127(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(u.hostname) || u.hostname === '[::1]';
  return u.protocol === 'http:' && loopback && text === u.origin && !!u.port;
}

/**
 * The token of the previous run, reused so a window left open survives an agent restart. Only from
 * the verified private runtime folder (the caller has checked it), only if it is the user's own 0600
 * file with a well-formed token; anything else means a fresh random token.
 */
export function keptToken(paths: Paths): string | undefined {
  let token: string | null = null;
  try {
    token = readPrivate(files(paths).token);
  } catch {
    return undefined;
  }
  return token && /^[A-Za-z0-9_-]{43}$/.test(token) ? token : undefined;
}

/**
 * The port of the previous run: `--port 0` tries it first, so that a window left open finds a
 * restarted agent at the same address (with the kept token) and reconnects by itself. Read like the
 * token; anything odd means any free port.
 */
export function keptPort(paths: Paths): number | undefined {
  let text: string | null = null;
  try {
    text = readPrivate(files(paths).port);
  } catch {
    return undefined;
  }
  const port = text && /^\d{4,5}$/.test(text) ? Number(text) : 0;
  return port >= 1024 && port <= 65535 ? port : undefined;
}

export function writeAgentAddress(paths: Paths, address: AgentAddress): void {
  ensureRuntimeDir(paths);
  const f = files(paths);
  writeFileAtomic(f.token, address.token + '\n', 0o600);
  const port = new URL(address.baseUrl).port;
  if (port) writeFileAtomic(f.port, port + '\n', 0o600);
  writeFileAtomic(f.endpoint, address.baseUrl + '\n', 0o600);
}

/** On a clean stop: the address goes if it is still ours (another agent may have started since); the token stays. */
export function forgetAgentAddress(paths: Paths, baseUrl: string): void {
  const f = files(paths);
  const r = readSmallRegularFile(f.endpoint, { privateTo: process.getuid!(), maxBytes: 4096 });
  if (r.status === 'ok' && r.data.toString('utf8').trim() === baseUrl) fs.rmSync(f.endpoint, { force: true });
}
