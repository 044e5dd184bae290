// The config's schemas, the one judge of a config file (config.ts reads the layers with them). Below
// the readers: config-defaults.ts and config-layers.ts (which `tabula sync` loads without zod) take
// only the types from here. The `image` and `fleet` sections' trust-relevant keys (source, keys) are
// read from the system layers only (see loadConfig systemOnly).
import { z } from 'zod';
import { checkSshOptions } from './storage-url';

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

/** The config's `sshOptions`: refused by name when ssh could be made to run or read something else. */
export const sshOptionsSchema = z.array(z.string()).superRefine((options, ctx) => {
  const problem = checkSshOptions(options);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const configSchema = z.object({
  storage: z.object({
    /** ssh://user@host[:port]/path, file:///path or /path. */
    url: z.string().min(1),
    /** Extra ssh arguments (identity file, known hosts…), passed as separate arguments; an allow-list. */
    sshOptions: sshOptionsSchema,
    connectTimeoutSeconds: z.number().int().min(1).max(300),
  }),
  backup: z.object({
    /** rsync patterns relative to the home, on top of the built-in excludes. */
    excludes: z.array(z.string().min(1)),
    /** A sync runs by itself this often (and on changes in the home, and when the storage is back). */
    intervalMinutes: z.number().min(1).max(24 * 60),
    /** First retry after a failure; doubles up to retryMaxSeconds. */
    retryMinSeconds: z.number().min(1).max(3600),
    retryMaxSeconds: z.number().min(1).max(24 * 3600),
    /** Quiet time after the last change in the home before a sync starts. */
    debounceSeconds: z.number().min(1).max(3600),
    watchHome: z.boolean(),
    maxDeletePercent: z.number().min(1).max(100),
    versionsRetentionDays: z.number().min(0).max(3650),
    /** 0: no limit. */
    bandwidthLimitKBps: z.number().int().min(0),
    /** Automatic runs wait while the connection is metered, or on battery below this (unless charging). */
    deferOnMetered: z.boolean(),
    minBatteryPercent: z.number().min(0).max(100),
    /** The storage is listed in full at least this often, even when its generation is unchanged. */
    verifyHours: z.number().min(0).max(24 * 365),
  }),
  image: imageConfigSchema,
  fleet: fleetConfigSchema,
});
export type TabulaConfig = z.infer<typeof configSchema>;

// Each layer may set any subset of keys; unknown keys are refused so typos do not pass silently.
export const layerSchema = z
  .object({
    storage: configSchema.shape.storage.partial().strict().optional(),
    backup: configSchema.shape.backup.partial().strict().optional(),
    // The image source's ssh options pass the same allow-list as the storage's.
    image: configSchema.shape.image.extend({ sshOptions: sshOptionsSchema }).partial().strict().optional(),
    fleet: configSchema.shape.fleet.partial().strict().optional(),
  })
  .strict();
