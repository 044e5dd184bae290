// Layered configuration: embedded defaults → image defaults (/usr/share/defaults/tabula) → admin
// (/etc/tabula) → the user's ~/.config/tabula → TABULA_CONFIG. Missing files mean "no change"; a
// corrupt or invalid file is skipped with a problem naming it, and the other layers still apply.
import path from 'node:path';
import { z } from 'zod';
import type { ConfigProblem } from '../common/contract';
import { readJsonDocument } from './atomic-file';
import { defaultFleetConfig, defaultImageConfig, fleetConfigSchema, imageConfigSchema } from './image-config';
import { symlinkOnTheWay, type Paths } from './paths';
import { sshOptionsSchema } from './storage-url';

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
const layerSchema = z
  .object({
    storage: configSchema.shape.storage.partial().strict().optional(),
    backup: configSchema.shape.backup.partial().strict().optional(),
    // The image source's ssh options pass the same allow-list as the storage's.
    image: configSchema.shape.image.extend({ sshOptions: sshOptionsSchema }).partial().strict().optional(),
    fleet: configSchema.shape.fleet.partial().strict().optional(),
  })
  .strict();

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

export interface LoadedConfig {
  config: TabulaConfig;
  problems: ConfigProblem[];
  /** The files that contributed, lowest layer first. */
  layers: string[];
}

/**
 * `systemOnly`: only the image defaults and /etc, never a file the user can write. What decides
 * trust (fleet keys, image source) is read this way, by the agent and by tabula-helper alike.
 */
export function loadConfig(paths: Paths, opts: { systemOnly?: boolean } = {}): LoadedConfig {
  const all = [paths.systemDefaultsFile, paths.adminConfigFile, paths.userConfigFile, paths.extraConfigFile];
  const files = (opts.systemOnly ? all.slice(0, 2) : all).filter(
    (f): f is string => !!f,
  );
  let config = embeddedDefaults(paths);
  const problems: ConfigProblem[] = [];
  const layers: string[] = [];
  for (const file of files) {
    // The user's folder lives in the synced home: a link there (one that arrived from the storage)
    // must not lead Tabula to a config somewhere else.
    const link = file === paths.userConfigFile ? symlinkOnTheWay(paths.home, path.dirname(file)) : null;
    if (link) {
      problems.push({ file, message: `${file} is not read: ${link} is a symbolic link, and Tabula reads its own settings only from a real folder. Its settings are ignored until it is fixed.` });
      continue;
    }
    const read = readJsonDocument(file, layerSchema);
    if (read.status === 'missing') continue;
    if (read.status === 'invalid') {
      problems.push({ file, message: `${file} ${read.problem}. Its settings are ignored until it is fixed.` });
      continue;
    }
    config = {
      storage: { ...config.storage, ...read.value.storage },
      backup: { ...config.backup, ...read.value.backup },
      image: { ...config.image, ...read.value.image },
      fleet: { ...config.fleet, ...read.value.fleet },
    };
    layers.push(file);
  }
  return { config, problems, layers };
}
