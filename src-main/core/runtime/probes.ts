// Real probes for the scheduler: power from /sys/class/power_supply, metered from NetworkManager.
// Tests use fakes (there is no battery or mobile modem here).
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface PowerState {
  /** null when the machine has no battery. */
  batteryPercent: number | null;
  charging: boolean;
}

export interface Probes {
  power(): Promise<PowerState>;
  /** null when unknown (no NetworkManager). */
  metered(): Promise<boolean | null>;
}

export function readPowerSupply(dir = '/sys/class/power_supply'): PowerState {
  let batteryPercent: number | null = null;
  let charging = false;
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return { batteryPercent: null, charging: false };
  }
  const read = (n: string, f: string) => {
    try {
      return fs.readFileSync(path.join(dir, n, f), 'utf8').trim();
    } catch {
      return '';
    }
  };
  for (const n of names) {
    const type = read(n, 'type');
    if (type === 'Battery') {
      const cap = Number(read(n, 'capacity'));
      if (Number.isFinite(cap)) batteryPercent = batteryPercent === null ? cap : Math.min(batteryPercent, cap);
      if (/^(Charging|Full)$/.test(read(n, 'status'))) charging = true;
    } else if ((type === 'Mains' || type === 'USB') && read(n, 'online') === '1') charging = true;
  }
  return { batteryPercent, charging };
}

/** "GENERAL.METERED:yes (guessed)" on any connected device → metered. null without NetworkManager. */
export function parseNmcliMetered(out: string): boolean | null {
  const values = out.split('\n').map((l) => /^GENERAL\.METERED:(.*)$/.exec(l.trim())?.[1]).filter((v): v is string => v !== undefined);
  if (!values.length) return null;
  return values.some((v) => v.startsWith('yes'));
}

export const realProbes: Probes = {
  power: async () => readPowerSupply(),
  metered: () =>
    new Promise((resolve) => {
      execFile('nmcli', ['-t', '-f', 'GENERAL.METERED', 'dev', 'show'], { timeout: 5000 }, (err, stdout) => resolve(err ? null : parseNmcliMetered(stdout)));
    }),
};

/** True for the `nmcli monitor` lines that mean "the network just came up". */
export function isNetworkUpLine(line: string): boolean {
  return /Connectivity is now '(full|limited)'/.test(line) || /NetworkManager is now in the 'connected/i.test(line);
}

/**
 * Calls onUp when NetworkManager reports connectivity (follows `nmcli monitor`). Without nmcli or
 * NetworkManager it does nothing: the schedule still runs. Returns a stop function.
 */
export function watchNetworkUp(onUp: () => void): () => void {
  let child: ReturnType<typeof spawn> | null = null;
  try {
    child = spawn('nmcli', ['monitor'], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, LC_ALL: 'C' } });
  } catch {
    return () => {};
  }
  child.on('error', () => {});
  let pending = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop()!;
    if (lines.some(isNetworkUpLine)) onUp();
  });
  return () => child?.kill();
}
