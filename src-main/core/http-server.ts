// Headless mode's transport: the built renderer and the API over HTTP + Server-Sent Events, on
// 127.0.0.1 only, behind a random token, refusing foreign Origins and Host names (DNS rebinding).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { agentProof, NONCE } from '../common/agent-proof';
import type { EventLog } from '../common/event-log';
import type { Router } from '../common/router';
import type { ErrorInfo } from '../common/errors';

export const contentSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const mimeTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

export interface HttpServerOptions {
  router: Router;
  events: EventLog;
  /** The built renderer (index.html and assets). */
  staticDir: string;
  port?: number;
  token?: string;
  /** Where a bug in a request handler is reported (the agent keeps serving). */
  logBug?: (err: unknown) => void;
  /**
   * Listen on this unix socket instead of 127.0.0.1 (the agent's socket for the CLI and the tray).
   * The socket's folder (the user's own, 0700) is its access control: no browser can reach it, so
   * neither the token nor the Host check applies there.
   */
  socketPath?: string;
}

export interface HeadlessServer {
  url: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

/** The request target as a URL with its path decoded, or null when it is malformed (a 400, never a throw). */
function parseTarget(raw: string | undefined): { url: URL; path: string } | null {
  try {
    const url = new URL(raw ?? '/', 'http://127.0.0.1');
    return { url, path: decodeURIComponent(url.pathname) };
  } catch {
    return null;
  }
}

export async function startHttpServer({ router, events, staticDir, port = 0, token = crypto.randomBytes(32).toString('base64url'), logBug = (err) => console.error('Bug in the HTTP API:', err), socketPath }: HttpServerOptions): Promise<HeadlessServer> {
  const expected = Buffer.from(`Bearer ${token}`);
  const streams = new Set<http.ServerResponse>();
  let actualPort = 0;
  let origins: string[] = [];

  const sendJson = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  const refuse = (res: http.ServerResponse, status: number, error: ErrorInfo) => sendJson(res, status, { ok: false, error });

  /** Whatever a handler throws ends that request (500, logged), never the agent. */
  const failed = (res: http.ServerResponse, err: unknown) => {
    logBug(err);
    if (!res.headersSent) refuse(res, 500, { code: 'internal', message: 'Tabula hit a bug answering this request; it keeps running.', retryable: false });
    else res.destroy();
  };

  const server = http.createServer((req, res) => {
    // A client that goes away mid-request must not become an unhandled 'error' event.
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    try {
      route(req, res);
    } catch (err) {
      failed(res, err);
    }
  });

  function route(req: http.IncomingMessage, res: http.ServerResponse) {
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    const target = parseTarget(req.url);
    if (!target) return refuse(res, 400, { code: 'invalid-argument', message: 'The request address is malformed.', retryable: false });
    const { url } = target;
    if (!socketPath && !origins.includes(`http://${req.headers.host ?? ''}`)) {
      return refuse(res, 421, { code: 'unauthorized', message: 'Tabula only answers on 127.0.0.1.', retryable: false });
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !origins.includes(origin)) {
      return refuse(res, 403, { code: 'unauthorized', message: 'Requests from other web sites are refused.', retryable: false });
    }
    if (!url.pathname.startsWith('/api/')) return serveStatic(url.pathname === '/' ? '/' : target.path, req, res);
    if (!socketPath && req.method === 'GET' && url.pathname === '/api/hello') return handleHello(url, res);

    const auth = Buffer.from(req.headers.authorization ?? '');
    if (!socketPath && (auth.length !== expected.length || !crypto.timingSafeEqual(auth, expected))) {
      return refuse(res, 401, { code: 'unauthorized', message: 'The Tabula token is missing or wrong. Open the address Tabula printed, or use the token file.', retryable: false });
    }
    if (req.method === 'POST' && url.pathname.startsWith('/api/call/')) return handleCall(target.path.slice(10), req, res);
    if (req.method === 'GET' && url.pathname === '/api/events') return handleEvents(url, req, res);
    return refuse(res, 404, { code: 'unknown-method', message: `No such endpoint: ${String(req.method).slice(0, 20)} ${url.pathname.slice(0, 200)}`, retryable: false });
  }

  /** Answers a window's question "are you the agent whose token I hold?" without seeing the token. */
  function handleHello(url: URL, res: http.ServerResponse) {
    const nonce = url.searchParams.get('nonce') ?? '';
    if (!NONCE.test(nonce)) return refuse(res, 400, { code: 'invalid-argument', message: 'The nonce is missing or malformed.', retryable: false });
    agentProof(token, actualPort, nonce).then(
      (proof) => sendJson(res, 200, { proof }),
      (err: unknown) => failed(res, err),
    );
  }

  function handleCall(method: string, req: http.IncomingMessage, res: http.ServerResponse) {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1 << 20) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      let args: unknown;
      try {
        args = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
      } catch {
        return refuse(res, 400, { code: 'invalid-argument', message: 'The request body is not valid JSON.', retryable: false });
      }
      router.handle(method, args).then(
        (reply) => sendJson(res, 200, reply),
        (err: unknown) => failed(res, err),
      );
    });
  }

  function handleEvents(url: URL, req: http.IncomingMessage, res: http.ServerResponse) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    const write = (e: { id: number }) => res.write(`id: ${e.id}\ndata: ${JSON.stringify(e)}\n\n`);
    const after = Number(url.searchParams.get('after') ?? '-1');
    // Replay and subscribe in the same tick, so no event can fall between them.
    const replay = Number.isInteger(after) && after >= 0 ? events.since(after) : { events: [], complete: false };
    if (replay.complete) replay.events.forEach(write);
    else res.write(`event: reset\ndata: ${JSON.stringify({ lastId: events.lastId() })}\n\n`);
    const unsubscribe = events.subscribe(write);
    const ping = setInterval(() => res.write(': ping\n\n'), 15000);
    streams.add(res);
    req.on('close', () => {
      clearInterval(ping);
      unsubscribe();
      streams.delete(res);
    });
  }

  function serveStatic(pathname: string, req: http.IncomingMessage, res: http.ServerResponse) {
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, { code: 'invalid-argument', message: 'Method not allowed.', retryable: false });
    const root = path.resolve(staticDir);
    const file = path.resolve(root, '.' + (pathname === '/' ? '/index.html' : pathname));
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      if (pathname === '/') {
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
        return res.end('The Tabula window is not built. Run `npm run build` and reload.\n');
      }
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('Not found\n');
    }
    res.writeHead(200, {
      'content-type': mimeTypes[path.extname(file)] ?? 'application/octet-stream',
      'content-security-policy': contentSecurityPolicy,
      'cache-control': 'no-cache',
    });
    if (req.method === 'HEAD') return res.end();
    fs.createReadStream(file)
      .on('error', () => res.destroy())
      .pipe(res);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (socketPath) server.listen(socketPath, resolve);
    else server.listen(port, '127.0.0.1', resolve);
  });
  if (!socketPath) actualPort = (server.address() as { port: number }).port;
  origins = [`http://127.0.0.1:${actualPort}`, `http://localhost:${actualPort}`];
  return {
    url: origins[0]!,
    port: actualPort,
    token,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) s.end();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
