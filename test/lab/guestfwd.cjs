// qemu's guestfwd `cmd:` runs this for each connection the guest opens to a forwarded address
// (libslirp's fork_exec: one process a connection, any number at once): stdin/stdout are one end of
// a loopback TCP pair whose other end slirp joins to the guest's connection, here joined to a port
// on the host's 127.0.0.1 (the NAS's sshd, the fleet server). slirp has accepted the guest's
// connection before this runs, so a refused connection here (the NAS "down") cannot be a refusal
// in the guest: this process exits with the guest's first bytes unread, its end is reset, and the
// guest sees "Connection reset by peer" (ssh: during the banner exchange).
// With TABULA_LAB_GUESTFWD_LOG (vm.ts sets it to guestfwd.log next to the laptop's console.log)
// each connection's start, end and bytes are logged there, to tell the lab's plumbing from the product.
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const [host, port] = process.argv.slice(2);
if (host !== '127.0.0.1' || !/^\d+$/.test(port ?? '')) process.exit(2);
const logFile = process.env.TABULA_LAB_GUESTFWD_LOG;
const t0 = Date.now();
let up = 0;
let down = 0;
const log = (what) => {
  if (!logFile) return;
  try {
    fs.appendFileSync(logFile, `${new Date().toISOString()} ${process.pid} :${port} +${Date.now() - t0} ms ${what} (guest sent ${up} B, got ${down} B)\n`);
  } catch {
    // A log that cannot be written loses only the log.
  }
};
const socket = net.connect(Number(port), host);
process.stdin.on('data', (d) => (up += d.length));
socket.on('data', (d) => (down += d.length));
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on('connect', () => log('connected'));
socket.on('error', (err) => {
  log(`host side: ${err.code ?? err.message}`);
  process.exit(1);
});
socket.on('close', () => {
  log('host side closed');
  process.exit(0);
});
process.stdin.on('end', () => {
  log('guest side closed');
  socket.end();
});
