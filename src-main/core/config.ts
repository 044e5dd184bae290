// Layered configuration: embedded defaults → image defaults (/usr/share/defaults/tabula) → admin
// (/etc/tabula) → the user's ~/.config/tabula → TABULA_CONFIG. Missing files mean "no change"; a
// corrupt or invalid file is skipped with a problem naming it, and the other layers still apply.
import { z } from 'zod';
import { schemaCheck } from './atomic-file';
import { mergeConfigLayers, type ConfigLayer, type LoadedConfig } from './config-layers';
import { fleetConfigSchema, imageConfigSchema } from './image-config';
import type { Paths } from './paths';
import { checkSshOptions } from './storage-url';

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

export { embeddedDefaults } from './config-defaults';

export type { LoadedConfig } from './config-layers';

/**
 * `systemOnly`: only the image defaults and /etc, never a file the user can write. What decides
 * trust (fleet keys, image source) is read this way, by the agent and by tabula-helper alike.
 */
export function loadConfig(paths: Paths, opts: { systemOnly?: boolean } = {}): LoadedConfig {
  return mergeConfigLayers(paths, opts, schemaCheck<ConfigLayer>(layerSchema));
}
