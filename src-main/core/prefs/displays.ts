// Displays: layouts saved per set of connected monitors (keyed by monitor identity from the EDID,
// not by connector name: the next laptop calls the same monitor HDMI-2 instead of DP-1), applied
// with xrandr on X11 and through ~/.config/monitors.xml on GNOME/Wayland (mutter reads it at login
// and on hotplug).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ApplyItem, MonitorState } from '../../common/contract/prefs';
import { profileKey, type DisplayOutput, type DisplayProfile, type DisplaysPrefs } from '../../common/prefs-schema';
import { writeFileAtomic } from '../atomic-file';
import { firstLine, runTool } from './run-tool';

// ---- EDID -----------------------------------------------------------------------------------

export interface EdidInfo {
  vendor: string;
  product: string;
  serial: string;
  name: string | null;
  /** Stable identity: a hash of vendor, product and serial (bytes 8–15), the same on every port. */
  id: string;
}

export function parseEdid(bytes: Buffer): EdidInfo | null {
  if (bytes.length < 128 || bytes.readUInt32BE(0) !== 0x00ffffff || bytes.readUInt32BE(4) !== 0xffffff00) return null;
  const m = bytes.readUInt16BE(8);
  const vendor = [(m >> 10) & 31, (m >> 5) & 31, m & 31].map((c) => String.fromCharCode(64 + c)).join('');
  const product = String(bytes.readUInt16LE(10));
  let serial = String(bytes.readUInt32LE(12));
  let name: string | null = null;
  for (const off of [54, 72, 90, 108]) {
    if (bytes[off] !== 0 || bytes[off + 1] !== 0) continue;
    const text = bytes.subarray(off + 5, off + 18).toString('latin1').split('\n')[0]!.trim();
    if (bytes[off + 3] === 0xfc) name = text;
    if (bytes[off + 3] === 0xff && text) serial = text;
  }
  const id = 'edid:' + crypto.createHash('sha256').update(bytes.subarray(8, 16)).digest('hex').slice(0, 16);
  return { vendor, product, serial, name, id };
}

/** The identity used as a profile key: EDID first; physical size, then connector, where there is none. */
export function monitorIdentity(edid: EdidInfo | null, widthMm: number, heightMm: number, connector: string): string {
  if (edid) return edid.id;
  if (widthMm > 0 && heightMm > 0) return `size:${widthMm}x${heightMm}mm`;
  return `connector:${connector.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64)}`;
}

// ---- xrandr ---------------------------------------------------------------------------------

export interface XrandrOutput extends MonitorState {
  edid: EdidInfo | null;
}

/** Parses `xrandr --verbose`: connected outputs with EDID, geometry, modes and refresh rates. */
export function parseXrandrVerbose(text: string): XrandrOutput[] {
  const outputs: XrandrOutput[] = [];
  const lines = text.split('\n');
  let cur: (XrandrOutput & { widthMm: number; heightMm: number; edidHex: string }) | null = null;
  let inEdid = false;
  let pendingMode: { width: number; height: number; current: boolean; preferred: boolean } | null = null;
  const finish = () => {
    if (!cur) return;
    const edid = cur.edidHex ? parseEdid(Buffer.from(cur.edidHex, 'hex')) : null;
    const { widthMm, heightMm, ...rest } = cur;
    delete (rest as Partial<typeof cur>).edidHex;
    outputs.push({ ...rest, edid, monitor: monitorIdentity(edid, widthMm, heightMm, cur.connector), label: edid?.name ?? (edid ? `${edid.vendor} ${edid.product}` : widthMm && heightMm ? `${widthMm}x${heightMm}mm monitor` : cur.connector) });
    cur = null;
  };
  for (const line of lines) {
    const head = /^(\S+) (connected|disconnected)( primary)?(?: (\d+)x(\d+)\+(\d+)\+(\d+))?(?: \(0x[0-9a-f]+\))?(?: (normal|left|inverted|right))?.*?(?:(\d+)mm x (\d+)mm)?\s*$/.exec(line);
    if (head && !line.startsWith(' ') && !line.startsWith('\t')) {
      finish();
      inEdid = false;
      if (head[2] !== 'connected') continue;
      cur = {
        connector: head[1]!,
        monitor: '',
        label: '',
        enabled: head[4] !== undefined,
        width: Number(head[4] ?? 0),
        height: Number(head[5] ?? 0),
        refresh: null,
        x: Number(head[6] ?? 0),
        y: Number(head[7] ?? 0),
        rotation: (head[8] as XrandrOutput['rotation']) ?? 'normal',
        primary: !!head[3],
        modes: [],
        edid: null,
        widthMm: Number(head[9] ?? 0),
        heightMm: Number(head[10] ?? 0),
        edidHex: '',
      };
      continue;
    }
    if (!cur) continue;
    const c = cur as XrandrOutput & { widthMm: number; heightMm: number; edidHex: string };
    if (/^\tEDID:/.test(line)) {
      inEdid = true;
      continue;
    }
    if (inEdid) {
      const hex = /^\t\t([0-9a-f]+)\s*$/.exec(line);
      if (hex) {
        c.edidHex += hex[1];
        continue;
      }
      inEdid = false;
    }
    const prop = /^\t(WIDTH_MM|HEIGHT_MM): (\d+)/.exec(line);
    if (prop) {
      if (prop[1] === 'WIDTH_MM' && !c.widthMm) c.widthMm = Number(prop[2]);
      if (prop[1] === 'HEIGHT_MM' && !c.heightMm) c.heightMm = Number(prop[2]);
      continue;
    }
    const mode = /^ {2}(\d+)x(\d+)i? \(0x[0-9a-f]+\).*?(\*current)?(\s+\+preferred)?\s*$/.exec(line);
    if (mode) {
      pendingMode = { width: Number(mode[1]), height: Number(mode[2]), current: !!mode[3], preferred: !!mode[4] };
      continue;
    }
    const vline = /^ {8}v:.*clock\s+([\d.]+)Hz/.exec(line);
    if (vline && pendingMode) {
      const refresh = Math.round(Number(vline[1]) * 100) / 100;
      const m = { width: pendingMode.width, height: pendingMode.height, refresh };
      if (pendingMode.preferred) c.modes.unshift(m);
      else c.modes.push(m);
      if (pendingMode.current) c.refresh = refresh;
      pendingMode = null;
    }
  }
  finish();
  return outputs;
}

// ---- the planner (pure) ---------------------------------------------------------------------

export interface DisplayPlan {
  key: string;
  profile: DisplayProfile | null;
  /** xrandr arguments; empty when nothing is to be done. */
  xrandrArgs: string[];
  items: ApplyItem[];
}

const describe = (o: DisplayOutput) => (o.enabled ? `${o.width}x${o.height}${o.refresh ? '@' + o.refresh : ''} at ${o.x},${o.y}${o.rotation !== 'normal' ? ' ' + o.rotation : ''}${o.primary ? ', primary' : ''}` : 'off');

export function findProfile(prefs: DisplaysPrefs, monitors: readonly Pick<MonitorState, 'monitor'>[]): DisplayProfile | null {
  const key = profileKey(monitors.map((m) => m.monitor));
  return prefs.profiles.find((p) => profileKey(p.outputs.map((o) => o.monitor)) === key) ?? null;
}

export function planDisplays(prefs: DisplaysPrefs, monitors: readonly MonitorState[]): DisplayPlan {
  const key = profileKey(monitors.map((m) => m.monitor));
  const profile = findProfile(prefs, monitors);
  const item = (action: string, status: ApplyItem['status'], reason: string | null = null): ApplyItem => ({ area: 'displays', item: 'Display layout', action, status, reason });
  if (!monitors.length) return { key, profile: null, xrandrArgs: [], items: [] };
  if (!profile) {
    const names = monitors.map((m) => `${m.label} on ${m.connector}`).join(', ');
    const reason = prefs.profiles.length ? `No saved layout matches these monitors (${names}); the layout was left as it is.` : null;
    return { key, profile: null, xrandrArgs: [], items: reason ? [item('use a saved layout', 'skipped', reason)] : [] };
  }
  const args: string[] = [];
  const changes: string[] = [];
  for (const want of profile.outputs) {
    const mon = monitors.find((m) => m.monitor === want.monitor)!;
    if (!want.enabled) {
      if (mon.enabled) {
        args.push('--output', mon.connector, '--off');
        changes.push(`${mon.connector} off`);
      }
      continue;
    }
    const offered = mon.modes.filter((m) => m.width === want.width && m.height === want.height);
    if (!offered.length) {
      return { key, profile, xrandrArgs: [], items: [item(`${mon.connector} ${describe(want)}`, 'failed', `${mon.label} (${mon.connector}) does not offer ${want.width}x${want.height}; the layout was left as it is.`)] };
    }
    const rate = want.refresh === null ? null : offered.reduce((a, b) => (Math.abs(b.refresh - want.refresh!) < Math.abs(a.refresh - want.refresh!) ? b : a)).refresh;
    const same =
      mon.enabled && mon.width === want.width && mon.height === want.height && mon.x === want.x && mon.y === want.y && mon.rotation === want.rotation && mon.primary === want.primary && (rate === null || mon.refresh === rate);
    if (same && want.scale === 1) continue;
    args.push('--output', mon.connector, '--mode', `${want.width}x${want.height}`);
    if (rate !== null) args.push('--rate', String(rate));
    args.push('--pos', `${want.x}x${want.y}`, '--rotate', want.rotation);
    if (want.scale !== 1) args.push('--scale', `${1 / want.scale}x${1 / want.scale}`);
    if (want.primary) args.push('--primary');
    changes.push(`${mon.connector} ${describe(want)}`);
  }
  if (!args.length) return { key, profile, xrandrArgs: [], items: [item(`"${profile.name}" is in use`, 'unchanged')] };
  return { key, profile, xrandrArgs: args, items: [item(`"${profile.name}": ${changes.join('; ')}`, 'planned')] };
}

// ---- GNOME/Wayland: monitors.xml ------------------------------------------------------------

export interface DrmConnector {
  connector: string;
  edid: EdidInfo | null;
}

/** Connected monitors from /sys/class/drm (works under Wayland, where xrandr sees only XWayland). */
export function readDrmConnectors(sysDrm: string): DrmConnector[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(sysDrm);
  } catch {
    return [];
  }
  const out: DrmConnector[] = [];
  for (const e of entries.sort()) {
    const m = /^card\d+-(.+)$/.exec(e);
    if (!m) continue;
    try {
      if (fs.readFileSync(path.join(sysDrm, e, 'status'), 'utf8').trim() !== 'connected') continue;
      const edid = fs.existsSync(path.join(sysDrm, e, 'edid')) ? parseEdid(fs.readFileSync(path.join(sysDrm, e, 'edid'))) : null;
      out.push({ connector: m[1]!, edid });
    } catch {
      /* a connector that vanished while reading */
    }
  }
  return out;
}

const xml = (s: string) => s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);

/** mutter's monitors.xml (version 2) for a profile, with this laptop's connector names. */
export function renderMonitorsXml(profile: DisplayProfile, connectors: readonly DrmConnector[]): string {
  const byId = new Map(connectors.map((c) => [monitorIdentity(c.edid, 0, 0, c.connector), c]));
  const logical = profile.outputs
    .filter((o) => o.enabled)
    .map((o) => {
      const c = byId.get(o.monitor)!;
      const spec = `<monitorspec><connector>${xml(c.connector)}</connector><vendor>${xml(c.edid?.vendor ?? 'unknown')}</vendor><product>${xml(c.edid?.name ?? c.edid?.product ?? 'unknown')}</product><serial>${xml(c.edid?.serial ?? 'unknown')}</serial></monitorspec>`;
      const mode = `<mode><width>${o.width}</width><height>${o.height}</height>${o.refresh ? `<rate>${o.refresh}</rate>` : ''}</mode>`;
      const transform = o.rotation === 'normal' ? '' : `<transform><rotation>${o.rotation === 'inverted' ? 'upside_down' : o.rotation}</rotation></transform>`;
      return `    <logicalmonitor><x>${o.x}</x><y>${o.y}</y><scale>${o.scale}</scale>${o.primary ? '<primary>yes</primary>' : ''}${transform}<monitor>${spec}${mode}</monitor></logicalmonitor>`;
    });
  const disabled = profile.outputs
    .filter((o) => !o.enabled)
    .map((o) => {
      const c = byId.get(o.monitor)!;
      return `    <disabled><monitorspec><connector>${xml(c.connector)}</connector><vendor>${xml(c.edid?.vendor ?? 'unknown')}</vendor><product>${xml(c.edid?.name ?? c.edid?.product ?? 'unknown')}</product><serial>${xml(c.edid?.serial ?? 'unknown')}</serial></monitorspec></disabled>`;
    });
  return `<monitors version="2">\n  <configuration>\n${[...logical, ...disabled].join('\n')}\n  </configuration>\n</monitors>\n`;
}

// ---- reading and applying -------------------------------------------------------------------

export type DisplaySession = 'x11' | 'wayland-gnome' | 'none';

export function detectSession(env: NodeJS.ProcessEnv): DisplaySession {
  if (env.XDG_SESSION_TYPE === 'wayland' && /gnome/i.test(env.XDG_CURRENT_DESKTOP ?? '')) return 'wayland-gnome';
  if (env.DISPLAY) return 'x11';
  return 'none';
}

export interface DisplaysApplierOptions {
  env: NodeJS.ProcessEnv;
  configHome: string;
  /** /sys/class/drm (moved under TABULA_ROOT in tests). */
  sysDrm: string;
}

export function createDisplaysApplier({ env, configHome, sysDrm }: DisplaysApplierOptions) {
  const session = detectSession(env);
  const monitorsXml = path.join(configHome, 'monitors.xml');

  /** `cached`: what the X server last saw, without probing outputs again (cheap enough to poll). */
  async function read(cached = false): Promise<{ session: DisplaySession; monitors: MonitorState[]; problem: string | null }> {
    if (session === 'x11') {
      const r = await runTool('xrandr', cached ? ['--current', '--verbose'] : ['--verbose'], { env });
      if (r.missing) return { session, monitors: [], problem: 'xrandr is not installed, so the display layout cannot be read or set.' };
      if (r.code !== 0) return { session, monitors: [], problem: `The display ${env.DISPLAY} cannot be reached: ${firstLine(r.stderr) || 'xrandr failed'}.` };
      return { session, monitors: parseXrandrVerbose(r.stdout).map((o) => {
        const m: Partial<XrandrOutput> = { ...o };
        delete m.edid;
        return m as MonitorState;
      }), problem: null };
    }
    if (session === 'wayland-gnome') {
      const monitors = readDrmConnectors(sysDrm).map((c) => ({
        connector: c.connector,
        monitor: monitorIdentity(c.edid, 0, 0, c.connector),
        label: c.edid?.name ?? c.connector,
        enabled: true,
        width: 0,
        height: 0,
        refresh: null,
        x: 0,
        y: 0,
        rotation: 'normal' as const,
        primary: false,
        modes: [],
      }));
      return { session, monitors, problem: monitors.length ? null : `No connected monitors were found in ${sysDrm}.` };
    }
    return { session, monitors: [], problem: 'There is no graphical session (no DISPLAY, not GNOME on Wayland), so displays are left alone.' };
  }

  async function apply(prefs: DisplaysPrefs, dryRun: boolean): Promise<ApplyItem[]> {
    if (!prefs.profiles.length) return [];
    const state = await read();
    if (state.problem) return [{ area: 'displays', item: 'Display layout', action: 'apply a saved layout', status: 'skipped', reason: state.problem }];
    if (session === 'wayland-gnome') {
      const profile = findProfile(prefs, state.monitors);
      if (!profile) return planDisplays(prefs, state.monitors).items;
      const text = renderMonitorsXml(profile, readDrmConnectors(sysDrm));
      let current = '';
      try {
        current = fs.readFileSync(monitorsXml, 'utf8');
      } catch {
        /* none yet */
      }
      const item: ApplyItem = { area: 'displays', item: 'Display layout', action: `"${profile.name}" in ${monitorsXml} (GNOME uses it at the next login or hotplug)`, status: 'planned', reason: null };
      if (current === text) return [{ ...item, status: 'unchanged' }];
      if (dryRun) return [item];
      writeFileAtomic(monitorsXml, text);
      return [{ ...item, status: 'applied' }];
    }
    const plan = planDisplays(prefs, state.monitors);
    if (dryRun || !plan.xrandrArgs.length) return plan.items;
    const r = await runTool('xrandr', plan.xrandrArgs, { env });
    if (r.code !== 0) {
      const why = firstLine(r.stderr) || `xrandr exited with ${r.code}`;
      const hint = plan.xrandrArgs.includes('--scale') ? ' (this display server cannot scale outputs)' : '';
      return plan.items.map((i) => ({ ...i, status: 'failed' as const, reason: `The display server refused the layout: ${why}${hint}.` }));
    }
    return plan.items.map((i) => (i.status === 'planned' ? { ...i, status: 'applied' as const } : i));
  }

  return { session, read, apply };
}
