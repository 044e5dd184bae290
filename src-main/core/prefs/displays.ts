// Displays: layouts saved per set of connected monitors (keyed by monitor identity from the EDID,
// not by connector name), applied by the backend of the session: xrandr on X11 (display-x11.ts),
// ~/.config/monitors.xml on GNOME/Wayland (display-gnome.ts). The planner is display-plan.ts.
import type { ApplyItem, MonitorState } from '../../common/contract/prefs';
import type { DisplaysPrefs } from '../../common/prefs-schema';
import { createGnomeDisplays } from './display-gnome';
import { createX11Displays } from './display-x11';

export { monitorIdentity, parseEdid, type EdidInfo } from './display-edid';
export { findProfile, planDisplays, type DisplayPlan } from './display-plan';
export { readDrmConnectors, renderMonitorsXml, type DrmConnector } from './display-gnome';
export { parseXrandrVerbose, type XrandrOutput } from './display-x11';

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
  const backend = session === 'x11' ? createX11Displays(env) : session === 'wayland-gnome' ? createGnomeDisplays({ configHome, sysDrm }) : null;

  /** `cached`: what the display server last saw, without probing outputs again (cheap enough to poll). */
  async function read(cached = false): Promise<{ session: DisplaySession; monitors: MonitorState[]; problem: string | null }> {
    if (!backend) return { session, monitors: [], problem: 'There is no graphical session (no DISPLAY, not GNOME on Wayland), so displays are left alone.' };
    return { session, ...(await backend.read(cached)) };
  }

  async function apply(prefs: DisplaysPrefs, dryRun: boolean): Promise<ApplyItem[]> {
    if (!prefs.profiles.length) return [];
    const state = await read();
    if (state.problem || !backend) return [{ area: 'displays', item: 'Display layout', action: 'apply a saved layout', status: 'skipped', reason: state.problem }];
    return backend.apply(prefs, state.monitors, dryRun);
  }

  return { session, read, apply };
}
