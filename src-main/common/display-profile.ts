// A display profile from the monitors on screen now: shared by the agent ("Save current layout",
// the CLI) and the window (no Node here), so both store the same thing.
import type { MonitorState } from './contract/prefs';
import type { DisplayOutput, DisplayProfile } from './prefs-schema';

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

/** The layout on screen now, as a profile for these monitors (what "Save current layout" stores). */
export function profileFromMonitors(name: string, monitors: readonly MonitorState[]): DisplayProfile {
  return { name, outputs: monitors.map(outputFromMonitor) };
}
