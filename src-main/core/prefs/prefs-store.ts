// ~/.config/tabula/prefs.json: what the user chose, layered over the image defaults
// (/usr/share/defaults/tabula/prefs.json) and the fleet's (/etc/tabula/prefs.json), which may also
// lock a key with a reason. The user file holds only what the user set, so a new image or fleet
// default reaches every key the user never touched. Read defensively (migrations, validation, the
// last good copy on damage), written atomically.
import path from 'node:path';
import { z } from 'zod';
import {
  emptyPrefs,
  isPrefKey,
  PREFS_VERSION,
  printersPrefsSchema,
  displaysPrefsSchema,
  networkPrefsSchema,
  type PrefKey,
  type Prefs,
  type UserPrefsFile,
  userPrefsFileSchema as userFileSchema,
} from '../../common/prefs-schema';
import type { PrefLeaf, PrefSource, PrefsView } from '../../common/contract/prefs';
import { TabulaError } from '../../common/errors';
import { createJsonStore, describeSchemaIssue, readJsonDocument } from '../atomic-file';
import type { Paths } from '../paths';

/** The values a key can hold, one schema per leaf. */
const leafSchemas = {
  'printers.default': printersPrefsSchema.shape.default,
  'printers.options': printersPrefsSchema.shape.options,
  'displays.profiles': displaysPrefsSchema.shape.profiles,
  'network.profiles': networkPrefsSchema.shape.profiles,
} as const;
export const prefLeaves = Object.keys(leafSchemas) as PrefLeaf[];

/** The leaves under a key ("printers" → both printer leaves). */
export function leavesOf(key: PrefKey): PrefLeaf[] {
  return prefLeaves.filter((l) => l === key || l.startsWith(key + '.'));
}


// Image and fleet files: flat "key": value defaults, and locks with the reason shown to the user.
const fleetFileSchema = z.strictObject({
  defaults: z.record(z.string(), z.unknown()).optional(),
  locked: z.record(z.string(), z.string().min(1).max(500)).optional(),
});

/**
 * Migrations from each older version to the next; each takes the parsed JSON of version N and
 * returns version N+1. Version 1 (Tabula 0.0.x) kept one default printer URI and options keyed by
 * URI, and no displays or network.
 */
const migrations: Record<number, (doc: Record<string, unknown>) => Record<string, unknown>> = {
  1: (doc) => {
    const { defaultPrinterUri, printerOptions, ...rest } = doc;
    // Version 1 had no "printers": left as it is, so the version 2 schema checks it (and refuses
    // whatever does not fit) instead of it being replaced without a word.
    if ('printers' in rest) return { ...doc, version: 2 };
    const options = Object.entries((printerOptions as Record<string, unknown> | undefined) ?? {}).map(([uri, options]) => ({ printer: { uri }, options }));
    return {
      ...rest,
      version: 2,
      printers: { ...(typeof defaultPrinterUri === 'string' ? { default: { uri: defaultPrinterUri } } : {}), ...(options.length ? { options } : {}) },
    };
  },
};

export function migrate(json: unknown): { doc: unknown; from: number } | { problem: string } {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return { problem: 'is not a preferences document (expected a JSON object)' };
  let doc = json as Record<string, unknown>;
  const from = doc.version;
  if (typeof from !== 'number' || !Number.isInteger(from) || from < 1) return { problem: 'has no valid "version" number' };
  if (from > PREFS_VERSION) return { problem: `was written by a newer Tabula (preferences version ${from}; this one reads up to ${PREFS_VERSION})` };
  for (let v = from; v < PREFS_VERSION; v++) doc = migrations[v]!(doc);
  return { doc, from };
}

const describeIssue = describeSchemaIssue;

/** The user's file (or its last good copy) of any version this Tabula reads, migrated to this one. */
const userDocumentSchema = z
  .unknown()
  .transform((json, ctx) => {
    const m = migrate(json);
    if (!('problem' in m)) return m.doc;
    ctx.addIssue({ code: 'custom', message: m.problem });
    return z.NEVER;
  })
  .pipe(userFileSchema);

type Read = { status: 'missing' } | { status: 'ok'; value: UserPrefsFile } | { status: 'invalid'; problem: string; tooNew: boolean };

function readUserFile(file: string): Read {
  const read = readJsonDocument(file, userDocumentSchema);
  return read.status === 'invalid' ? { ...read, tooNew: /newer Tabula/.test(read.problem) } : read;
}

function getLeaf(doc: UserPrefsFile, leaf: PrefLeaf): unknown {
  const [section, field] = leaf.split('.') as [keyof Omit<UserPrefsFile, 'version'>, string];
  return (doc[section] as Record<string, unknown> | undefined)?.[field];
}
function setLeaf(doc: UserPrefsFile, leaf: PrefLeaf, value: unknown): UserPrefsFile {
  const [section, field] = leaf.split('.') as [keyof Omit<UserPrefsFile, 'version'>, string];
  return { ...doc, [section]: { ...(doc[section] ?? {}), [field]: value } };
}

export interface PrefsStoreOptions {
  paths: Paths;
}

export function createPrefsStore({ paths }: PrefsStoreOptions) {
  const file = path.join(paths.userConfigDir, 'prefs.json');
  const imageFile = path.join(paths.root, 'usr/share/defaults/tabula/prefs.json');
  const fleetFile = path.join(paths.root, 'etc/tabula/prefs.json');

  /** Reads a defaults/lock layer; a broken one is reported and skipped, the others still apply. */
  function readLayer(layerFile: string, problems: string[]) {
    const defaults: Partial<Record<PrefLeaf, unknown>> = {};
    const locked: Partial<Record<PrefLeaf, string>> = {};
    const read = readJsonDocument(layerFile, fleetFileSchema);
    if (read.status !== 'ok') {
      if (read.status === 'invalid') problems.push(`${layerFile} ${read.problem}; its defaults and locks are ignored.`);
      return { defaults, locked };
    }
    const parsed = { data: read.value };
    for (const [key, value] of Object.entries(parsed.data.defaults ?? {})) {
      if (!isPrefKey(key)) {
        problems.push(`${layerFile} sets an unknown key "${key}"; that default is ignored.`);
        continue;
      }
      for (const leaf of leavesOf(key)) {
        const v = key === leaf ? value : (value as Record<string, unknown> | null)?.[leaf.split('.')[1]!];
        if (v === undefined) continue;
        const ok = leafSchemas[leaf].safeParse(v);
        if (ok.success) defaults[leaf] = ok.data;
        else problems.push(`${layerFile}: the default for "${leaf}" ${describeIssue(ok.error).replace(/^has an /, 'has an ')}; it is ignored.`);
      }
    }
    for (const [key, reason] of Object.entries(parsed.data.locked ?? {})) {
      if (!isPrefKey(key)) {
        problems.push(`${layerFile} locks an unknown key "${key}"; that lock is ignored.`);
        continue;
      }
      for (const leaf of leavesOf(key)) locked[leaf] = reason;
    }
    return { defaults, locked };
  }

  let tooNew: string | null = null;
  const userStore = createJsonStore(file, userDocumentSchema, (): UserPrefsFile => ({ version: PREFS_VERSION }));

  function loadUser(problems: string[]): UserPrefsFile {
    const main = readUserFile(file);
    if (main.status === 'invalid' && main.tooNew) {
      // Not damaged, only newer: leave it exactly as it is and refuse to write over it.
      tooNew = `${file} ${main.problem}. Update Tabula to change preferences on this laptop; nothing was changed.`;
      problems.push(tooNew);
      return { version: PREFS_VERSION };
    }
    tooNew = null;
    if (main.status === 'ok') return main.value;
    // Missing, or damaged: then the last good copy, as for every document the agent keeps.
    const { value, problem } = userStore.load();
    if (problem) problems.push(`Your preferences file ${problem}`);
    return value;
  }

  function view(): PrefsView {
    const problems: string[] = [];
    const image = readLayer(imageFile, problems);
    const fleet = readLayer(fleetFile, problems);
    const user = loadUser(problems);
    const empty = emptyPrefs();
    let effective: Prefs = empty;
    const sources = {} as Record<PrefLeaf, PrefSource>;
    const locks: Partial<Record<PrefLeaf, string>> = { ...image.locked, ...fleet.locked };
    const ignored: string[] = [];
    for (const leaf of prefLeaves) {
      const userValue = getLeaf(user, leaf);
      let value: unknown;
      let source: PrefSource;
      if (userValue !== undefined && !locks[leaf]) [value, source] = [userValue, 'user'];
      else if (fleet.defaults[leaf] !== undefined) [value, source] = [fleet.defaults[leaf], 'fleet'];
      else if (image.defaults[leaf] !== undefined) [value, source] = [image.defaults[leaf], 'image'];
      else [value, source] = [getLeaf(empty as UserPrefsFile, leaf), 'default'];
      if (userValue !== undefined && locks[leaf]) ignored.push(leaf);
      sources[leaf] = source;
      const [section, field] = leaf.split('.') as [keyof Omit<Prefs, 'version'>, string];
      effective = { ...effective, [section]: { ...effective[section], [field]: value } };
    }
    if (ignored.length) problems.push(`Your own value for ${ignored.map((k) => `"${k}"`).join(', ')} is kept but not used: the fleet has locked it.`);
    return { file, effective, user, sources, locks, problems };
  }

  function save(doc: UserPrefsFile) {
    if (tooNew) throw new TabulaError('prefs-invalid', tooNew);
    const checked = userFileSchema.parse(doc); // never write what we could not read back
    // Also the last good copy (.bak): a file damaged later falls back to exactly this.
    userStore.save(checked);
  }

  function requireKey(key: string): PrefKey {
    if (!isPrefKey(key)) throw new TabulaError('invalid-argument', `There is no preference "${key.slice(0, 80)}". Known keys: printers.default, printers.options, displays.profiles, network.profiles (or a whole section: printers, displays, network).`);
    return key;
  }

  return {
    file,
    view,
    get(key: string) {
      const k = requireKey(key);
      const v = view();
      const leaves = leavesOf(k);
      const pick = (leaf: PrefLeaf) => {
        const [section, field] = leaf.split('.') as [keyof Omit<Prefs, 'version'>, string];
        return (v.effective[section] as Record<string, unknown>)[field];
      };
      const value = leaves.length === 1 && leaves[0] === k ? pick(k as PrefLeaf) : Object.fromEntries(leaves.map((l) => [l.split('.')[1], pick(l)]));
      const lock = leaves.map((l) => v.locks[l]).find(Boolean) ?? null;
      return { key: k, value, sources: Object.fromEntries(leaves.map((l) => [l, v.sources[l]])), locked: lock, problems: v.problems };
    },
    /** Validates and stores one key; a locked key is refused with the fleet's reason. */
    set(key: string, value: unknown): PrefsView {
      const k = requireKey(key);
      const current = view();
      let doc = current.user;
      if (leavesOf(k)[0] !== k && value !== null && typeof value === 'object' && !Array.isArray(value)) {
        // A whole section: every field must be one of its keys, or it would be dropped without a word.
        const fields = leavesOf(k).map((l) => l.split('.')[1]!);
        const unknown = Object.keys(value).find((f) => !fields.includes(f));
        if (unknown !== undefined) throw new TabulaError('invalid-argument', `"${k}" has no field "${unknown.slice(0, 80)}" (it has ${fields.join(', ')}). Nothing was changed.`);
      }
      for (const leaf of leavesOf(k)) {
        const lock = current.locks[leaf];
        if (lock) throw new TabulaError('pref-locked', `"${leaf}" is set by your organisation and cannot be changed here: ${lock}`);
        const raw = leaf === k ? value : (value as Record<string, unknown> | null)?.[leaf.split('.')[1]!];
        if (leaf !== k && (value === null || typeof value !== 'object' || Array.isArray(value))) {
          throw new TabulaError('invalid-argument', `"${k}" takes an object with ${leavesOf(k).map((l) => l.split('.')[1]).join(', ')}.`);
        }
        if (raw === undefined) continue;
        const parsed = leafSchemas[leaf].safeParse(raw);
        if (!parsed.success) throw new TabulaError('invalid-argument', `The value for "${leaf}" ${describeIssue(parsed.error)}. Nothing was changed.`);
        doc = setLeaf(doc, leaf, parsed.data);
      }
      save(doc);
      return view();
    },
    /** The user's own values, as a portable document (what `prefs export` prints). */
    exportDoc(): UserPrefsFile {
      return view().user;
    },
    /**
     * Replaces the user's values with an exported document (any version this Tabula can migrate).
     * Locked keys are left alone and listed; an invalid document changes nothing.
     */
    importDoc(json: unknown): { view: PrefsView; skippedLocked: PrefLeaf[] } {
      const m = migrate(json);
      if ('problem' in m) throw new TabulaError('prefs-invalid', `The imported preferences ${m.problem}. Nothing was changed.`);
      const parsed = userFileSchema.safeParse(m.doc);
      if (!parsed.success) throw new TabulaError('prefs-invalid', `The imported preferences ${describeIssue(parsed.error)}. Nothing was changed.`);
      const current = view();
      let doc: UserPrefsFile = { version: PREFS_VERSION };
      const skippedLocked: PrefLeaf[] = [];
      for (const leaf of prefLeaves) {
        const incoming = getLeaf(parsed.data, leaf);
        if (current.locks[leaf]) {
          if (incoming !== undefined) skippedLocked.push(leaf);
          const kept = getLeaf(current.user, leaf);
          if (kept !== undefined) doc = setLeaf(doc, leaf, kept);
        } else if (incoming !== undefined) doc = setLeaf(doc, leaf, incoming);
      }
      save(doc);
      return { view: view(), skippedLocked };
    },
  };
}
export type PrefsStore = ReturnType<typeof createPrefsStore>;
