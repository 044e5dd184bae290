// Reading the config's layers, and a check of a layer that needs no zod. zod's schemas (config-schema.ts) stay
// the one judge of a config; `tabula sync` only avoids loading them, a third of its memory at start
// (issue 9: 64 MiB for a whole sync), when every layer passes the check below. The check accepts a
// subset of what the schemas accept (a test holds it to that): whatever it does not accept, however
// harmless, is handed to the schemas, which refuse it with their own message or accept it.
import path from 'node:path';
import type { ConfigProblem } from '../common/contract';
import { parseJsonChecked, readSmallRegularFile, schemaCheck, type Checked } from './atomic-file';
import type { TabulaConfig } from './config-schema';
import { embeddedDefaults } from './config-defaults';
import { symlinkOnTheWay, type Paths } from './paths';
import { checkSshOptions } from './storage-url';

/** One file's settings: any subset of each section's keys. */
export type ConfigLayer = { [S in keyof TabulaConfig]?: Partial<TabulaConfig[S]> };

export interface LoadedConfig {
  config: TabulaConfig;
  problems: ConfigProblem[];
  /** The files that contributed, lowest layer first. */
  layers: string[];
}

/**
 * The layers merged over the embedded defaults, each file read the one careful way (no symlink, a
 * regular file, a size cap) and judged by `check`. `systemOnly`: only the image defaults and /etc.
 */
export function mergeConfigLayers(paths: Paths, opts: { systemOnly?: boolean }, check: (json: unknown) => Checked<ConfigLayer>): LoadedConfig {
  const all = [paths.systemDefaultsFile, paths.adminConfigFile, paths.userConfigFile, paths.extraConfigFile];
  const files = (opts.systemOnly ? all.slice(0, 2) : all).filter((f): f is string => !!f);
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
    const read = readSmallRegularFile(file);
    if (read.status === 'missing') continue;
    const parsed: Checked<ConfigLayer> = read.status === 'ok' ? parseJsonChecked(read.data, check) : { ok: false, problem: read.problem };
    if (!parsed.ok) {
      problems.push({ file, message: `${file} ${parsed.problem}. Its settings are ignored until it is fixed.` });
      continue;
    }
    const layer = parsed.value;
    config = {
      storage: { ...config.storage, ...layer.storage },
      backup: { ...config.backup, ...layer.backup },
      image: { ...config.image, ...layer.image },
      fleet: { ...config.fleet, ...layer.fleet },
    };
    layers.push(file);
  }
  return { config, problems, layers };
}

/**
 * The config for `tabula sync`: layers that pass the check below are read without zod; when any does
 * not, the whole config is read again by the schemas, for their verdict and their words. (A file that
 * cannot be read or is not JSON is said the same way on both paths.)
 */
export async function loadConfigQuickly(paths: Paths, opts: { systemOnly?: boolean } = {}): Promise<LoadedConfig> {
  let unsure = false;
  const quick = mergeConfigLayers(paths, opts, (json) => {
    if (isPlainLayer(json)) return { ok: true, value: json };
    unsure = true;
    return { ok: false, problem: 'is not a plain config' };
  });
  if (!unsure) return quick;
  // The schemas, loaded only now: the same reading as loadConfig's (config.ts), from the floor below.
  const { layerSchema } = await import('./config-schema');
  return mergeConfigLayers(paths, opts, schemaCheck<ConfigLayer>(layerSchema));
}

type Rule =
  | 'string'
  | 'nonempty'
  | 'boolean'
  | 'strings'
  | 'nonemptyStrings'
  | 'sshOptions'
  | RegExp
  | readonly string[]
  | { min: number; max?: number; int?: true };

/** The schemas' rules (config-schema.ts), key by key; a test compares the two. */
export const layerRules: { [S in keyof TabulaConfig]: { [K in keyof TabulaConfig[S]]-?: Rule } } = {
  storage: { url: 'nonempty', sshOptions: 'sshOptions', connectTimeoutSeconds: { min: 1, max: 300, int: true } },
  backup: {
    excludes: 'nonemptyStrings',
    intervalMinutes: { min: 1, max: 24 * 60 },
    retryMinSeconds: { min: 1, max: 3600 },
    retryMaxSeconds: { min: 1, max: 24 * 3600 },
    debounceSeconds: { min: 1, max: 3600 },
    watchHome: 'boolean',
    maxDeletePercent: { min: 1, max: 100 },
    versionsRetentionDays: { min: 0, max: 3650 },
    bandwidthLimitKBps: { min: 0, int: true },
    deferOnMetered: 'boolean',
    minBatteryPercent: { min: 0, max: 100 },
    verifyHours: { min: 0, max: 24 * 365 },
  },
  image: {
    backend: ['none', 'ostree', 'rsync-tree'],
    url: 'string',
    channel: /^[A-Za-z0-9._-]{1,64}$/,
    ostreeRef: /^[A-Za-z0-9._/-]{1,200}$/,
    ostreeOsName: /^[A-Za-z0-9._-]{1,64}$/,
    gpgKeyring: 'string',
    sshOptions: 'sshOptions',
    connectTimeoutSeconds: { min: 1, max: 300, int: true },
    checkIntervalHours: { min: 0.05, max: 24 * 30 },
    windowMinutes: { min: 0, max: 24 * 60 },
    deferOnMetered: 'boolean',
    minBatteryPercent: { min: 0, max: 100, int: true },
    bandwidthKBps: { min: 0, int: true },
    autoPull: 'boolean',
  },
  fleet: {
    url: 'string',
    trustedKeys: 'strings',
    commandKeys: 'strings',
    machineClass: 'string',
    commandPollMinutes: { min: 0.05, max: 24 * 60 },
    reimageCountdownSeconds: { min: 0, max: 3600, int: true },
  },
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
const isStrings = (v: unknown, min: number) => Array.isArray(v) && v.every((s) => typeof s === 'string' && s.length >= min);

function follows(rule: Rule, v: unknown): boolean {
  if (rule === 'string') return typeof v === 'string';
  if (rule === 'nonempty') return typeof v === 'string' && v.length > 0;
  if (rule === 'boolean') return typeof v === 'boolean';
  if (rule === 'strings') return isStrings(v, 0);
  if (rule === 'nonemptyStrings') return isStrings(v, 1);
  if (rule === 'sshOptions') return isStrings(v, 0) && checkSshOptions(v as string[]) === null;
  if (rule instanceof RegExp) return typeof v === 'string' && rule.test(v);
  if (Array.isArray(rule)) return typeof v === 'string' && rule.includes(v);
  const r = rule as { min: number; max?: number; int?: true };
  return typeof v === 'number' && Number.isFinite(v) && v >= r.min && (r.max === undefined || v <= r.max) && (!r.int || Number.isSafeInteger(v));
}

/** True only for a layer the schemas accept as it is: known sections and keys, each value by its rule. */
export function isPlainLayer(json: unknown): json is ConfigLayer {
  if (!isObject(json)) return false;
  for (const [section, value] of Object.entries(json)) {
    if (!Object.hasOwn(layerRules, section) || !isObject(value)) return false;
    const rules = layerRules[section as keyof TabulaConfig] as Record<string, Rule>;
    for (const [key, v] of Object.entries(value)) if (!Object.hasOwn(rules, key) || !follows(rules[key]!, v)) return false;
  }
  return true;
}
