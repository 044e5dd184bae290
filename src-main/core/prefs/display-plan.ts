// The display planner (pure): which saved layout matches the connected monitors, and what applying
// it means, as items a person reads and as xrandr arguments.
import type { ApplyItem, MonitorState } from '../../common/contract/prefs';
import { savedProfileFor } from '../../common/display-profile';
import { profileKey, type DisplayOutput, type DisplayProfile, type DisplaysPrefs } from '../../common/prefs-schema';

export interface DisplayPlan {
  key: string;
  profile: DisplayProfile | null;
  /** xrandr arguments; empty when nothing is to be done. */
  xrandrArgs: string[];
  items: ApplyItem[];
}

const describe = (o: DisplayOutput) => (o.enabled ? `${o.width}x${o.height}${o.refresh ? '@' + o.refresh : ''} at ${o.x},${o.y}${o.rotation !== 'normal' ? ' ' + o.rotation : ''}${o.primary ? ', primary' : ''}` : 'off');

export function findProfile(prefs: DisplaysPrefs, monitors: readonly Pick<MonitorState, 'monitor'>[]): DisplayProfile | null {
  return savedProfileFor(monitors, prefs.profiles);
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
