// The `image` and `fleet` sections of the config. Trust-relevant keys (source, keys) are read from
// the system layers only (see loadConfig systemOnly).
import { z } from 'zod';

export const imageConfigSchema = z.object({
  backend: z.enum(['none', 'ostree', 'rsync-tree']),
  /** rsync-tree: ssh://user@host/path or a folder; ostree: http(s):// URL of the repo. */
  url: z.string(),
  channel: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
  ostreeRef: z.string().regex(/^[A-Za-z0-9._/-]{1,200}$/),
  ostreeOsName: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
  /** GPG public keyring for ostree commits, a path inside the system root. */
  gpgKeyring: z.string(),
  sshOptions: z.array(z.string()),
  connectTimeoutSeconds: z.number().int().min(1).max(300),
  checkIntervalHours: z.number().min(0.05).max(24 * 30),
  /** Checks happen at a random point inside this window after the interval: a fleet must not pull at once. */
  windowMinutes: z.number().min(0).max(24 * 60),
  deferOnMetered: z.boolean(),
  /** Below this battery level (and not charging) pulls wait. 0 disables. */
  minBatteryPercent: z.number().int().min(0).max(100),
  /** KB/s for rsync-tree pulls; 0 = no cap. */
  bandwidthKBps: z.number().int().min(0),
  /** Pull and stage by itself when a check finds a new version. */
  autoPull: z.boolean(),
});
export type ImageConfig = z.infer<typeof imageConfigSchema>;


export const fleetConfigSchema = z.object({
  /** Where policy and per-machine commands are served: http(s)://, ssh:// or a folder. Empty: none. */
  url: z.string(),
  /**
   * Image role: ed25519 public keys (base64, from `tabula-fleet keygen`) trusted for manifests,
   * channel files and the fleet policy. Never for commands.
   */
  trustedKeys: z.array(z.string()),
  /**
   * Command role: keys trusted for per-machine commands (reimage, pull, diagnostics) and nothing
   * else. Kept apart so that a leaked image-signing key cannot order a reimage. Empty: no commands.
   */
  commandKeys: z.array(z.string()),
  machineClass: z.string(),
  commandPollMinutes: z.number().min(0.05).max(24 * 60),
  /** How long the person at the machine sees the reset coming (and can stop it). */
  reimageCountdownSeconds: z.number().int().min(0).max(3600),
});
export type FleetConfig = z.infer<typeof fleetConfigSchema>;

// Without zod, for `tabula sync` (config-layers.ts); re-exported for the others.
export { defaultFleetConfig, defaultImageConfig } from './config-defaults';
