// Who this machine is, as the fleet knows it: /etc/machine-id and the primary MAC address.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MachineIdentity } from '../../common/contract/helpdesk';
import { readMachineId } from '../device-name';

// Read where the device name (the laptop's name on the storage) is made, one floor down.
export { readMachineId };

/**
 * The first physical interface (one with a device behind it) by name, else the first non-loopback
 * one with an address: stable across boots, unlike "whichever is up".
 */
export function readPrimaryMac(netDir = '/sys/class/net'): string | null {
  let names: string[] = [];
  try {
    names = fs.readdirSync(netDir).sort();
  } catch {
    return null;
  }
  const mac = (n: string) => {
    try {
      const a = fs.readFileSync(path.join(netDir, n, 'address'), 'utf8').trim().toLowerCase();
      return /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(a) && a !== '00:00:00:00:00:00' ? a : null;
    } catch {
      return null;
    }
  };
  const physical = names.filter((n) => n !== 'lo' && fs.existsSync(path.join(netDir, n, 'device')));
  for (const n of [...physical, ...names.filter((n) => n !== 'lo')]) {
    const a = mac(n);
    if (a) return a;
  }
  return null;
}

export function readIdentity(root: string, machineClass: string): MachineIdentity {
  const rootNet = path.join(root, 'sys/class/net');
  return { hostname: os.hostname(), machineId: readMachineId(root), primaryMac: readPrimaryMac(fs.existsSync(rootNet) ? rootNet : undefined), machineClass };
}
