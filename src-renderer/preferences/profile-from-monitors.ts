// The display layout the window starts from: the saved one for exactly these monitors, or what the
// monitors show now. One place, used by the Displays tab (and its tests).
import type { MonitorState } from '../../src-main/common/contract/prefs';
import { outputFromMonitor } from '../../src-main/common/display-profile';
import { profileKey, type DisplayProfile } from '../../src-main/common/prefs-schema';

/** The saved profile for this set of monitors, if any. */
export function savedProfileFor(monitors: MonitorState[], saved: DisplayProfile[]): DisplayProfile | null {
  const key = profileKey(monitors.map((m) => m.monitor));
  return saved.find((p) => profileKey(p.outputs.map((o) => o.monitor)) === key) ?? null;
}

export function profileFromMonitors(monitors: MonitorState[], saved: DisplayProfile[]): DisplayProfile {
  const existing = savedProfileFor(monitors, saved);
  return {
    name: existing?.name ?? `${monitors.length} monitor${monitors.length === 1 ? '' : 's'}`,
    outputs: monitors.map((m) => existing?.outputs.find((o) => o.monitor === m.monitor) ?? outputFromMonitor(m)),
  };
}
