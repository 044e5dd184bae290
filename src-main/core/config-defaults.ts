// The embedded defaults, the lowest layer of the config (see config.ts). Apart from the schemas (only
// their types are taken) so that `tabula sync` reads its config without loading zod (config-layers.ts).
import path from 'node:path';
import type { FleetConfig, ImageConfig, TabulaConfig } from './config-schema';
import type { Paths } from './paths';

export const defaultImageConfig: ImageConfig = {
  backend: 'none',
  url: '',
  channel: 'stable',
  ostreeRef: 'tabula/stable/x86_64',
  ostreeOsName: 'tabula',
  gpgKeyring: '/usr/share/defaults/tabula/fleet.gpg',
  sshOptions: [],
  connectTimeoutSeconds: 10,
  checkIntervalHours: 6,
  windowMinutes: 60,
  deferOnMetered: true,
  minBatteryPercent: 30,
  bandwidthKBps: 0,
  autoPull: true,
};

export const defaultFleetConfig: FleetConfig = { url: '', trustedKeys: [], commandKeys: [], machineClass: 'standard', commandPollMinutes: 15, reimageCountdownSeconds: 30 };

export function embeddedDefaults(paths: Paths): TabulaConfig {
  return {
    // Out of the box the app does its job: a local folder (point it at a NAS or sshd for real use).
    storage: { url: path.join(paths.dataDir, 'storage'), sshOptions: [], connectTimeoutSeconds: 10 },
    backup: {
      excludes: [],
      intervalMinutes: 15,
      retryMinSeconds: 30,
      retryMaxSeconds: 15 * 60,
      debounceSeconds: 30,
      watchHome: true,
      maxDeletePercent: 50,
      versionsRetentionDays: 30,
      bandwidthLimitKBps: 0,
      deferOnMetered: true,
      minBatteryPercent: 20,
      verifyHours: 24,
    },
    image: defaultImageConfig,
    fleet: defaultFleetConfig,
  };
}
