// Parsing what the real probes read: /sys/class/power_supply (a folder laid out like sysfs) and nmcli.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isNetworkUpLine, parseNmcliMetered, readPowerSupply } from '../../src-main/core/runtime/probes';

function sysfs(entries: Record<string, Record<string, string>>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabula-power-'));
  for (const [name, files] of Object.entries(entries)) {
    fs.mkdirSync(path.join(dir, name));
    for (const [f, v] of Object.entries(files)) fs.writeFileSync(path.join(dir, name, f), v + '\n');
  }
  return dir;
}

describe('power and network probes', () => {
  it('reads battery level and charging from power_supply', () => {
    expect(readPowerSupply(sysfs({ BAT0: { type: 'Battery', capacity: '23', status: 'Discharging' }, AC: { type: 'Mains', online: '0' } }))).toEqual({ batteryPercent: 23, charging: false });
    expect(readPowerSupply(sysfs({ BAT0: { type: 'Battery', capacity: '23', status: 'Discharging' }, AC: { type: 'Mains', online: '1' } }))).toEqual({ batteryPercent: 23, charging: true });
    expect(readPowerSupply(sysfs({ AC: { type: 'Mains', online: '1' } }))).toEqual({ batteryPercent: null, charging: true });
    expect(readPowerSupply('/nonexistent')).toEqual({ batteryPercent: null, charging: false });
  });

  it('reads metered from nmcli, including guessed values', () => {
    expect(parseNmcliMetered('GENERAL.METERED:no (guessed)\nGENERAL.METERED:yes (guessed)\n')).toBe(true);
    expect(parseNmcliMetered('GENERAL.METERED:no\nGENERAL.METERED:unknown\n')).toBe(false);
    expect(parseNmcliMetered('')).toBeNull();
  });

  it('recognises network-up lines from nmcli monitor', () => {
    expect(isNetworkUpLine("Connectivity is now 'full'")).toBe(true);
    expect(isNetworkUpLine("NetworkManager is now in the 'connected (site only)' state")).toBe(true);
    expect(isNetworkUpLine("Connectivity is now 'none'")).toBe(false);
  });
});
