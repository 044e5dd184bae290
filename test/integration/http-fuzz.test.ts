// The headless agent's HTTP surface under hostile input (issue 12 item 7), against a real
// `tabula --headless` process: the request that killed it (`GET /%ff`, sent by a web page's <img>
// in Chromium), then a bounded fuzz of raw requests (methods, paths, encodings, headers, bodies) over
// TCP. Nothing may end the agent, nothing may be a 500, and it must still answer afterwards.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox, startHeadlessAgent, type AgentSandbox, type RunningAgent } from '../fixtures/headless-agent';

let sb: AgentSandbox;
let agent: RunningAgent;
let port: number;

beforeAll(async () => {
  sb = createSandbox();
  agent = await startHeadlessAgent(sb);
  port = Number(new URL(agent.url).port);
});
afterAll(() => sb.dispose());

/** Sends raw bytes, returns the status code of the answer (0: the connection closed without one). */
function rawRequest(bytes: Buffer, timeoutMs = 3000): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    const done = () => {
      socket.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(answer);
      resolve(m ? Number(m[1]) : 0);
    };
    socket.setTimeout(timeoutMs, done);
    socket.on('data', (c: Buffer) => {
      answer += c.toString('latin1');
      if (/\r\n\r\n/.test(answer)) done(); // the status line and headers are all we need
    });
    socket.on('end', done);
    socket.on('close', done);
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? done() : reject(err)));
    socket.end(bytes);
  });
}

async function stillServing() {
  const r = await fetch(`${agent.url}/api/call/status.get`, { method: 'POST', headers: { authorization: `Bearer ${agent.token}`, 'content-type': 'application/json' }, body: '{}' });
  expect(r.status).toBe(200);
  expect(((await r.json()) as { ok: boolean }).ok).toBe(true);
}

describe('headless agent under hostile requests', () => {
  it('answers GET /%ff (malformed percent-encoding) with 400 and keeps serving', async () => {
    for (const p of ['/%ff', '/%', '/api/call/%ff', '/api/%E0%A4%A']) {
      const status = await rawRequest(Buffer.from(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`));
      expect([p, status]).toEqual([p, 400]);
    }
    // With the token, the API path itself is decoded: still 400, not a crash.
    const authed = await rawRequest(Buffer.from(`POST /api/call/%ff HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${agent.token}\r\nContent-Length: 2\r\n\r\n{}`));
    expect(authed).toBe(400);
    await stillServing();
  });

  it("survives a web page whose <img> points at it, loaded in Chromium", async () => {
    const page = path.join(sb.dir, 'page.html');
    fs.writeFileSync(page, `<!doctype html><img src="http://127.0.0.1:${port}/%ff"><img src="http://127.0.0.1:${port}/api/call/%ff">`);
    const r = spawnSync('/usr/bin/chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--user-data-dir=' + path.join(sb.dir, 'chromium'), '--virtual-time-budget=3000', '--dump-dom', 'file://' + page], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stdout).toContain('<img');
    await stillServing();
    expect(agent.output()).not.toMatch(/URIError/);
  });

  it('keeps serving after a bounded fuzz of raw requests, and never answers 500', async () => {
    const host = `127.0.0.1:${port}`;
    const pathChars = fc.constantFrom('a', '/', '.', '..', '%', '%ff', '%00', '%2e', '%2f', '%c0%af', '%E0%A4%A', '\\', '?', '#', '&after=', '~', 'é', '\u{1F600}', ' ', '\t', '%25', 'index.html', 'assets', 'status.get', 'prefs.get', 'no.such');
    const target = fc.tuple(fc.constantFrom('/', '/api/', '/api/call/', '/api/events', '/index.html', '//', '*', 'http://127.0.0.1/', ''), fc.array(pathChars, { maxLength: 8 })).map(([a, b]) => a + b.join(''));
    const method = fc.oneof(fc.constantFrom('GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'BREW'), fc.string({ minLength: 0, maxLength: 8 }));
    const header = fc.oneof(
      fc.constant(`Host: ${host}`),
      fc.constantFrom('Host: evil.example', 'Host: ', `Host: localhost:${port}`, `Origin: http://${host}`, 'Origin: http://evil.example', 'Origin: null'),
      fc.constantFrom(`Authorization: Bearer ${agent.token}`, 'Authorization: Bearer x', 'Authorization: ', `Authorization: bearer ${agent.token}x`),
      fc.constantFrom('Content-Type: application/json', 'Content-Type: text/plain; charset=latin1', 'Transfer-Encoding: chunked', 'Transfer-Encoding: gzip, chunked', 'Content-Encoding: gzip', 'Expect: 100-continue', 'Connection: upgrade', 'Upgrade: websocket'),
      fc.integer({ min: -5, max: 5000 }).map((n) => `Content-Length: ${n}`),
      fc.tuple(fc.stringMatching(/^[!-9;-~]{1,12}$/), fc.string({ maxLength: 30 })).map(([k, v]) => `${k}: ${v}`),
    );
    const body = fc.oneof(
      fc.constant(''),
      fc.constantFrom('{}', '{"at":', 'null', '[]', '{"__proto__":{"x":1}}', '0\r\n\r\n', 'zz\r\nbad\r\n0\r\n\r\n', '5\r\n{"a":\r\n0\r\n\r\n'),
      fc.json({ maxDepth: 3 }),
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a).toString('latin1')),
    );
    const request = fc.record({ method, target, headers: fc.array(header, { maxLength: 6 }), body, latin1: fc.boolean() });
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const head = `${r.method} ${r.target} HTTP/1.1\r\n${r.headers.map((h) => h + '\r\n').join('')}\r\n`;
        const bytes = r.latin1 ? Buffer.from(head + r.body, 'latin1') : Buffer.from(head + r.body, 'utf8');
        const status = await rawRequest(bytes, 1500);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        expect(status).not.toBe(500);
      }),
      { numRuns: 300, seed: Number(process.env.TABULA_FUZZ_SEED ?? Date.now() % 2 ** 31), endOnFailure: true },
    );
    // The fuzz reached the token check and past it, not only the parser's own refusals.
    expect(statuses.get(400)).toBeGreaterThan(0);
    expect([...statuses.keys()].some((s) => s === 401 || s === 403 || s === 421)).toBe(true);
    await stillServing();
    expect(agent.output()).not.toMatch(/Bug in the HTTP API/);
  }, 120_000);
});
