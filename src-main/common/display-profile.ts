// Display profiles and the monitors on screen: which saved layout is for exactly these monitors, and
// the layout a window starts from. One place for the agent (applying a layout) and the window (no
// Node here), so both match and store the same thing.
import type { MonitorState } from './contract/prefs';
import { profileKey, type DisplayOutput, type DisplayProfile } from './prefs-schema';

/** One monitor as it is now, as a profile output. */
export function outputFromMonitor(m: MonitorState): DisplayOutput {
  return {
    monitor: m.monitor,
    label: m.label,
    enabled: m.enabled,
    width: m.width || m.modes[0]?.width || 1024,
    height: m.height || m.modes[0]?.height || 768,
    refresh: m.refresh,
    x: m.x,
    y: m.y,
    scale: 1,
    rotation: m.rotation,
    primary: m.primary,
  };
}

/** The saved profile for exactly this set of monitors (by monitor identity, not connector), if any. */
export function savedProfileFor(monitors: readonly Pick<MonitorState, 'monitor'>[], saved: readonly DisplayProfile[]): DisplayProfile | null {
  const key = profileKey(monitors.map((m) => m.monitor));
  return saved.find((p) => profileKey(p.outputs.map((o) => o.monitor)) === key) ?? null;
}

/** The layout for these monitors: the saved one's outputs where it has them, else what the monitors show now. */
export function profileFromMonitors(monitors: readonly MonitorState[], saved: readonly DisplayProfile[] = []): DisplayProfile {
  const existing = savedProfileFor(monitors, saved);
  return {
    name: existing?.name ?? `${monitors.length} monitor${monitors.length === 1 ? '' : 's'}`,
    outputs: monitors.map((m) => existing?.outputs.find((o) => o.monitor === m.monitor) ?? outputFromMonitor(m)),
  };
}
