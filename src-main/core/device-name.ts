// The name Tabula gives this laptop where other laptops see it: its conflict copies, its record on the
// storage (.tabula/origin/<name>), the storage lock's holder, the conflict inbox. On a stateless fleet
// every laptop starts each boot with the image's /etc, so the host name it reads there is the same on
// every laptop of the image: two laptops of one person would mislabel each other's conflicts and take
// each other's storage lock as their own. The machine-id is what the boot keeps per machine.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function readMachineId(root: string): string | null {
  try {
    const id = fs.readFileSync(path.join(root, 'etc/machine-id'), 'utf8').trim();
    return /^[0-9a-f]{32}$/.test(id) ? id : null;
  } catch {
    return null;
  }
}

function readStaticHostname(root: string): string | null {
  try {
    return fs.readFileSync(path.join(root, 'etc/hostname'), 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/**
 * This laptop's name: the host name when it was given to this machine after boot (by DHCP or
 * `hostnamectl`: it differs from the one in /etc/hostname), else the host name and the first 8 hex
 * digits of /etc/machine-id ("laptop-3d1219c7"). A name read from /etc/hostname may be the image's,
 * and without /etc/hostname it may be a fallback ("localhost") that every laptop shares: nothing here
 * can tell. Without a machine-id (an image before its first boot) the host name alone. At most 63
 * characters, so it stays a valid host-name-like record name.
 */
export function deviceName(root: string, hostname: string = os.hostname()): string {
  const host = hostname.trim() || 'localhost';
  const machineId = readMachineId(root);
  const staticName = readStaticHostname(root);
  if (!machineId || (staticName !== null && staticName !== host)) return host.slice(0, 63);
  return `${host.slice(0, 54)}-${machineId.slice(0, 8)}`;
}
