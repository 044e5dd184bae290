// qemu's guestfwd `cmd:` runs this for each connection the guest opens to a forwarded address:
// stdin/stdout become that connection, joined to a port on the host's 127.0.0.1 (the NAS's sshd,
// the fleet server). A refused connection (the NAS is "down") closes the guest's connection.
'use strict';
const net = require('node:net');
const [host, port] = process.argv.slice(2);
if (host !== '127.0.0.1' || !/^\d+$/.test(port ?? '')) process.exit(2);
const socket = net.connect(Number(port), host);
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on('error', () => process.exit(1));
socket.on('close', () => process.exit(0));
process.stdin.on('end', () => socket.end());
