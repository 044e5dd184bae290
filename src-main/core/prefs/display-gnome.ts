// Displays on GNOME/Wayland: monitors from /sys/class/drm, the layout written to
// ~/.config/monitors.xml (mutter reads it at login and on hotplug).
import fs from 'node:fs';
import path from 'node:path';
import type { ApplyItem, MonitorState } from '../../common/contract/prefs';
import type { DisplayProfile, DisplaysPrefs } from '../../common/prefs-schema';
import { writeFileAtomic } from '../atomic-file';
import { monitorIdentity, parseEdid, type EdidInfo } from './display-edid';
import { findProfile, planDisplays } from './display-plan';

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

export function createGnomeDisplays({ configHome, sysDrm }: { configHome: string; sysDrm: string }) {
  const monitorsXml = path.join(configHome, 'monitors.xml');

  async function read(): Promise<{ monitors: MonitorState[]; problem: string | null }> {
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
    return { monitors, problem: monitors.length ? null : `No connected monitors were found in ${sysDrm}.` };
  }

  async function apply(prefs: DisplaysPrefs, monitors: MonitorState[], dryRun: boolean): Promise<ApplyItem[]> {
    const profile = findProfile(prefs, monitors);
    if (!profile) return planDisplays(prefs, monitors).items;
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

  return { read, apply };
}
