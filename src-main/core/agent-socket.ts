// The running agent's socket, `$XDG_RUNTIME_DIR/tabula/agent.sock`: the same HTTP + SSE contract
// as the window's loopback server, carried over a unix socket, for the CLI and the tray. Its access
// control is the file system: the runtime folder is the user's own (0700) and the socket is 0600,
// so no token is needed and no other local user (nor a web page) can reach it.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { createHttpClient } from '../common/clients';
import type { ApiClient } from '../common/contract';
import { TabulaError } from '../common/errors';
import type { EventLog } from '../common/event-log';
import type { Router } from '../common/router';
import { startHttpServer } from './http-server';
import { agentSocketPath, ensureRuntimeDir, type Paths } from './paths';

export { agentSocketPath } from './paths';

/** Whether something answers on the socket (a live agent), without sending it anything. */
function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface AgentSocket {
  path: string;
  close(): Promise<void>;
}

/**
 * Serves the API on the socket. A socket left by an agent that died is replaced; one that answers
 * means another agent runs for this user ('already-running'); anything else at that path (a file, a
 * link, someone else's socket) is refused, never removed.
 */
export async function serveAgentSocket(opts: { router: Router; events: EventLog; socketPath: string; staticDir: string }): Promise<AgentSocket> {
  const { socketPath } = opts;
  const st = lstatOrNull(socketPath);
  if (st) {
    if (!st.isSocket() || st.uid !== process.getuid!()) {
      throw new TabulaError('unsafe-folder', `${socketPath} is not this user's agent socket; Tabula leaves it alone and does not start. Remove it, then start Tabula again.`);
    }
    if (await answers(socketPath)) throw new TabulaError('already-running', 'Another Tabula agent is already running for this user.');
    fs.rmSync(socketPath);
  }
  const server = await startHttpServer({ router: opts.router, events: opts.events, staticDir: opts.staticDir, socketPath }).catch((err: NodeJS.ErrnoException) => {
    // Two agents starting at once: the other one bound first.
    if (err.code === 'EADDRINUSE') throw new TabulaError('already-running', 'Another Tabula agent is already running for this user.');
    throw err;
  });
  fs.chmodSync(socketPath, 0o600);
  const ino = fs.lstatSync(socketPath).ino;
  return {
    path: socketPath,
    async close() {
      await server.close();
      // Only our own socket: another agent may have replaced it since.
      if (lstatOrNull(socketPath)?.ino === ino) fs.rmSync(socketPath, { force: true });
    },
  };
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

/**
 * A client of the running agent, or null when none is recorded. Nothing is sent before the runtime
 * folder (the user's own, 0700, not a link) and the socket in it check out.
 */
export function connectAgent(paths: Paths, opts: { retryMs?: number } = {}): ApiClient | null {
  if (!lstatOrNull(paths.runtimeDir)) return null;
  ensureRuntimeDir(paths);
  return connectAgentSocket(agentSocketPath(paths), opts);
}

/**
 * A client of the agent over its socket, or null when no socket of this user is there. The socket
 * is checked first (a socket, owned by this user): nothing is sent to anything else.
 */
export function connectAgentSocket(socketPath: string, opts: { retryMs?: number } = {}): ApiClient | null {
  const st = lstatOrNull(socketPath);
  if (!st) return null;
  if (!st.isSocket() || st.uid !== process.getuid!()) {
    throw new TabulaError('unsafe-folder', `${socketPath} is not this user's agent socket; Tabula sends nothing to it. Remove it and start Tabula again.`);
  }
  return createSocketClient(socketPath, opts);
}

/** The HTTP client of common/clients.ts, with a fetch that goes over the unix socket. */
export function createSocketClient(socketPath: string, opts: { retryMs?: number } = {}): ApiClient {
  return createHttpClient({ baseUrl: 'http://localhost', token: '', fetch: createSocketFetch(socketPath), retryMs: opts.retryMs, where: socketPath });
}

/** The subset of fetch the HTTP client uses (method, headers, string body, abort), over a unix socket. */
export function createSocketFetch(socketPath: string): typeof fetch {
  const socketFetch = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> =>
    new Promise((resolve, reject) => {
      // Checked at every request: a client that lives long (the tray) must not follow a socket
      // someone else put there after the agent went away.
      const st = lstatOrNull(socketPath);
      if (st && (!st.isSocket() || st.uid !== process.getuid!())) {
        return reject(new TabulaError('unsafe-folder', `${socketPath} is not this user's agent socket; Tabula sends nothing to it. Remove it and start Tabula again.`));
      }
      const url = new URL(String(input));
      const headers = { ...(init.headers as Record<string, string> | undefined), host: 'localhost' };
      // A connection of its own for every request (agent: false), never an idle kept-alive one: the
      // agent closes those after 5 s, and a client starved meanwhile (a busy laptop) would write its
      // next request into the closed one ("write EPIPE"). A unix socket connects in microseconds.
      const req = http.request({ socketPath, agent: false, method: init.method ?? 'GET', path: url.pathname + url.search, headers }, (res) => {
        const outHeaders = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) outHeaders.set(k, Array.isArray(v) ? v.join(', ') : v);
        const body = Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>;
        resolve(new Response(body, { status: res.statusCode ?? 500, headers: outHeaders }));
      });
      const abort = () => req.destroy(new Error('aborted'));
      if (init.signal?.aborted) return abort();
      init.signal?.addEventListener('abort', abort, { once: true });
      req.on('error', reject);
      req.end(typeof init.body === 'string' ? init.body : undefined);
    });
  return socketFetch as typeof fetch;
}
