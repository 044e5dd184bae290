// The pure planners and parsers behind the appliers: printers (lpoptions), displays (xrandr), network
// (NetworkManager settings). Integration tests run them against the real tools.
import { describe, expect, it } from 'vitest';
import type { MonitorState, PrinterDest } from '../../src-main/common/contract/prefs';
import { pskProblem, wifiProfileSchema, type DisplayProfile } from '../../src-main/common/prefs-schema';
import { monitorIdentity, parseEdid, parseXrandrVerbose, planDisplays, renderMonitorsXml } from '../../src-main/core/prefs/displays';
import { networkSettings, profileUuid, renderGVariant, renderKeyfile, uuidV5 } from '../../src-main/core/prefs/network';
import { matchPrinter, parseLpoptions, planPrinters, renderLpoptions } from '../../src-main/core/prefs/printers';

const dest = (queue: string, uri: string, media: string[] = []): PrinterDest => ({ queue, uri, dnssdName: null, info: null, isDefault: false, options: {}, media });

describe('printer planner', () => {
  it('matches by URI first, then by DNS-SD service name, never by queue name', () => {
    const dests = [dest('lab-b', 'dnssd://Lab%20Color._ipp._tcp.local/?uuid=b'), dest('office', 'IPP://Office.Example/ipp/print/')];
    expect(matchPrinter({ uri: 'ipp://office.example/ipp/print' }, dests)).toBe('office');
    expect(matchPrinter({ uri: 'dnssd://Lab%20Color._ipp._tcp.local/?uuid=a' }, dests)).toBe('lab-b');
    expect(matchPrinter({ uri: 'ipp://10.1.1.1/ipp', dnssdName: 'lab color' }, dests)).toBe('lab-b');
    expect(matchPrinter({ uri: 'ipp://lab-b/ipp' }, dests)).toBeNull();
  });

  it('changes only its own options and the Default line; keeps the rest of lpoptions as it was', () => {
    const current = parseLpoptions("Default old media=Letter\nDest office/draft print-quality=3\nDest office job-sheets=none printer-info='My office'\n");
    const plan = planPrinters(
      { default: { uri: 'ipp://o/p' }, options: [{ printer: { uri: 'ipp://o/p' }, options: { media: 'A4', duplex: 'one-sided' } }] },
      [dest('office', 'ipp://o/p', ['A4', 'Letter']), dest('old', 'ipp://old/p')],
      current,
    );
    expect(renderLpoptions(plan.file)).toBe("Dest old media=Letter\nDest office/draft print-quality=3\nDefault office job-sheets=none printer-info='My office' sides=one-sided media=A4\n");
    expect(plan.items.map((i) => i.status)).toEqual(['planned', 'planned']);
    const again = planPrinters({ default: { uri: 'ipp://o/p' }, options: [] }, [dest('office', 'ipp://o/p')], plan.file);
    expect(again.changed).toBe(false);
    expect(again.items[0]!.status).toBe('unchanged');
  });
});

// An EDID as a monitor sends it: header, vendor DEL, product 0xa0f1, serial 12345, name descriptor.
function makeEdid(vendor: string, product: number, serial: number, name: string): Buffer {
  const e = Buffer.alloc(128);
  Buffer.from([0, 255, 255, 255, 255, 255, 255, 0]).copy(e, 0);
  const c = [...vendor].map((ch) => ch.charCodeAt(0) - 64);
  e.writeUInt16BE((c[0]! << 10) | (c[1]! << 5) | c[2]!, 8);
  e.writeUInt16LE(product, 10);
  e.writeUInt32LE(serial, 12);
  e.set([0, 0, 0, 0xfc, 0], 54);
  Buffer.from((name + '\n').padEnd(13, ' '), 'latin1').copy(e, 59);
  return e;
}

const xrandrSample = (connector: string, edid: Buffer | null) => `Screen 0: minimum 320 x 200, current 3840 x 1080, maximum 16384 x 16384
${connector} connected primary 1920x1080+0+0 (0x47) normal (normal left inverted right x axis y axis) 527mm x 296mm
\tIdentifier: 0x42
${edid ? '\tEDID: \n' + edid.toString('hex').match(/.{1,32}/g)!.map((l) => '\t\t' + l).join('\n') + '\n' : ''}\tnon-desktop: 0 
  1920x1080 (0x47) 148.500MHz +HSync +VSync *current +preferred
        h: width  1920 start 2008 end 2052 total 2200 skew    0 clock  67.50KHz
        v: height 1080 start 1084 end 1089 total 1125           clock  60.00Hz
  1920x1080 (0x48) 174.500MHz +HSync +VSync
        h: width  1920 start 1968 end 2000 total 2080 skew    0 clock  83.89KHz
        v: height 1080 start 1083 end 1088 total 1119           clock  74.97Hz
  1280x720 (0x49) 74.250MHz +HSync +VSync
        h: width  1280 start 1390 end 1430 total 1650 skew    0 clock  45.00KHz
        v: height  720 start  725 end  730 total  750           clock  60.00Hz
DP-3 disconnected (normal left inverted right x axis y axis)
`;

describe('display planner', () => {
  const dell = makeEdid('DEL', 0xa0f1, 12345, 'DELL U2720Q');

  it('reads EDID identity, name and modes from xrandr --verbose; the identity ignores the connector', () => {
    const [out] = parseXrandrVerbose(xrandrSample('DP-1', dell));
    expect(out).toMatchObject({ connector: 'DP-1', label: 'DELL U2720Q', primary: true, width: 1920, height: 1080, refresh: 60, enabled: true });
    expect(out!.monitor).toMatch(/^edid:[0-9a-f]{16}$/);
    expect(out!.modes).toContainEqual({ width: 1920, height: 1080, refresh: 74.97 });
    expect(parseXrandrVerbose(xrandrSample('HDMI-2', dell))[0]!.monitor).toBe(out!.monitor);
    expect(parseEdid(dell)).toMatchObject({ vendor: 'DEL', product: String(0xa0f1), serial: '12345' });
    // No EDID: physical size, then connector name.
    expect(parseXrandrVerbose(xrandrSample('VGA-1', null))[0]!.monitor).toBe('size:527x296mm');
    expect(monitorIdentity(null, 0, 0, 'DUMMY0')).toBe('connector:DUMMY0');
  });

  const mon = (connector: string, monitor: string, x = 0, primary = false): MonitorState => ({
    connector,
    monitor,
    label: monitor,
    enabled: true,
    width: 1920,
    height: 1080,
    refresh: 60,
    x,
    y: 0,
    rotation: 'normal',
    primary,
    modes: [
      { width: 1920, height: 1080, refresh: 60 },
      { width: 1280, height: 720, refresh: 60 },
    ],
  });
  const out = (monitor: string, x: number, primary: boolean, width = 1920, height = 1080) =>
    ({ monitor, enabled: true, width, height, refresh: null, x, y: 0, scale: 1, rotation: 'normal', primary }) as const;
  const profile: DisplayProfile = { name: 'Desk', outputs: [out('size:600x340mm', 0, false, 1280, 720), out('size:530x300mm', 1280, true)] };

  it('plans xrandr arguments by monitor identity, whatever the connectors are called', () => {
    const onB = [mon('HDMI-7', 'size:530x300mm', 0, true), mon('DP-9', 'size:600x340mm', 1920)];
    const plan = planDisplays({ profiles: [profile] }, onB);
    expect(plan.xrandrArgs).toEqual(['--output', 'DP-9', '--mode', '1280x720', '--pos', '0x0', '--rotate', 'normal', '--output', 'HDMI-7', '--mode', '1920x1080', '--pos', '1280x0', '--rotate', 'normal', '--primary']);
    expect(plan.items[0]).toMatchObject({ status: 'planned' });
  });

  it('reports a monitor set with no saved layout and a mode the monitor lacks, and plans nothing', () => {
    const other = planDisplays({ profiles: [profile] }, [mon('DP-1', 'size:100x100mm')]);
    expect(other.xrandrArgs).toEqual([]);
    expect(other.items[0]!.reason).toMatch(/No saved layout matches these monitors \(size:100x100mm on DP-1\)/);
    const tooBig = planDisplays({ profiles: [{ name: 'X', outputs: [out('size:1x1mm', 0, true, 3840, 2160)] }] }, [mon('DP-1', 'size:1x1mm')]);
    expect(tooBig.items[0]!.reason).toMatch(/does not offer 3840x2160/);
    expect(tooBig.xrandrArgs).toEqual([]);
  });

  it('writes monitors.xml for GNOME with this laptop’s connector names', () => {
    const id = parseEdid(dell)!.id;
    const xml = renderMonitorsXml({ name: 'Desk', outputs: [out(id, 0, true)] }, [{ connector: 'DP-4', edid: parseEdid(dell) }]);
    expect(xml).toContain('<connector>DP-4</connector><vendor>DEL</vendor><product>DELL U2720Q</product><serial>12345</serial>');
    expect(xml).toContain('<primary>yes</primary>');
  });
});

describe('network settings', () => {
  it('derives a stable RFC 4122 v5 UUID from the user and profile name', () => {
    expect(uuidV5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toBe('2ed6657d-e927-568b-95e1-2665a8aea6a2');
    const wifi = wifiProfileSchema.parse({ kind: 'wifi', name: 'Home', ssid: 'Home', security: 'wpa2-personal', autoconnect: true });
    expect(profileUuid('ann', wifi)).toBe(profileUuid('ann', { ...wifi }));
    expect(profileUuid('ann', wifi)).not.toBe(profileUuid('bob', wifi));
  });

  it('makes the user own the profile and keeps the secret out of it (agent-owned)', () => {
    const wifi = wifiProfileSchema.parse({ kind: 'wifi', name: 'Home', ssid: 'Café', security: 'wpa3-personal', autoconnect: false });
    const kf = renderKeyfile(networkSettings(wifi, 'ann'));
    expect(kf).toContain('permissions=user:ann:;');
    expect(kf).toContain('key-mgmt=sae');
    expect(kf).toContain('psk-flags=1');
    expect(kf).toContain('ssid=67;97;102;195;169;');
    expect(kf).not.toMatch(/^psk=/m);
    expect(renderGVariant(networkSettings(wifi, 'ann'))).toContain("'permissions': <@as ['user:ann:']>");
  });

  it('refuses control characters in names (they reach D-Bus, nmcli and messages)', () => {
    const r = wifiProfileSchema.safeParse({ kind: 'wifi', name: 'Home\nnet', ssid: 'Home', security: 'open', autoconnect: true });
    expect(r.error?.issues[0]?.message).toBe('must not contain control characters');
  });

  it('checks Wi-Fi passwords as WPA does', () => {
    expect(pskProblem('short')).toMatch(/8 to 63/);
    expect(pskProblem('g'.repeat(64))).toMatch(/8 to 63/);
    expect(pskProblem('ab'.repeat(32))).toBeNull();
    expect(pskProblem('correct horse')).toBeNull();
    expect(pskProblem('pässwort1')).toMatch(/printable ASCII/);
  });
});
