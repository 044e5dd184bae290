// Preferences in the contract: the stored view (with sources and fleet locks), the current state
// of printers, displays and network next to it, and per-item apply reports.
import { z } from 'zod';
import { method } from './method';
import { displayProfileSchema, networkProfileSchema, type PrefKey, type Prefs, type PrinterOptions, type UserPrefsFile } from '../prefs-schema';


export type PrefLeaf = Extract<PrefKey, `${string}.${string}`>;
/** Where the value in use came from. */
export type PrefSource = 'user' | 'fleet' | 'image' | 'default';

export interface PrefsView {
  file: string;
  /** What is in force: user over fleet over image over built-in defaults, locks applied. */
  effective: Prefs;
  /** Only what the user set. */
  user: UserPrefsFile;
  sources: Record<PrefLeaf, PrefSource>;
  /** Locked keys and the fleet's reason. */
  locks: Partial<Record<PrefLeaf, string>>;
  /** Damaged or ignored files, for a person to read. */
  problems: string[];
}

export type PrefArea = 'printers' | 'displays' | 'network';

export interface ApplyItem {
  area: PrefArea;
  /** What this is about: "Default printer", "Options for Office LaserJet", "Display layout", "Wi-Fi Home". */
  item: string;
  /** What applying does (or did): "make queue office-lj the default", "no change needed". */
  action: string;
  /** planned: dry run; unchanged: already as preferred; failed/skipped: reason says why. */
  status: 'applied' | 'unchanged' | 'planned' | 'failed' | 'skipped';
  /** Set for every status but applied/unchanged/planned: a sentence a person can act on. */
  reason: string | null;
}

export interface ApplyReport {
  at: string;
  dryRun: boolean;
  items: ApplyItem[];
}

export interface PrinterDest {
  queue: string;
  uri: string;
  dnssdName: string | null;
  info: string | null;
  isDefault: boolean;
  /** The user's options for this queue as CUPS clients will see them. */
  options: PrinterOptions;
  /** The paper sizes the queue offers (empty when unknown). */
  media: string[];
}

export interface MonitorState {
  connector: string;
  monitor: string;
  label: string;
  enabled: boolean;
  width: number;
  height: number;
  refresh: number | null;
  x: number;
  y: number;
  rotation: 'normal' | 'left' | 'right' | 'inverted';
  primary: boolean;
  /** "WxH@Hz" the monitor offers, preferred first. */
  modes: { width: number; height: number; refresh: number }[];
}

export interface NetworkProfileState {
  name: string;
  uuid: string;
  /** Active in NetworkManager right now. */
  present: boolean;
  /** A secret is in the keyring (null when the profile needs none). */
  hasSecret: boolean | null;
}

/** Each part may be unavailable (no cupsd, no X display…): then `problem` says why. */
export interface PrefsCurrentState {
  printers: { dests: PrinterDest[]; problem: string | null };
  displays: { session: 'x11' | 'wayland-gnome' | 'none'; monitors: MonitorState[]; profileKey: string; problem: string | null };
  network: { profiles: NetworkProfileState[]; problem: string | null };
}

export interface PrefsEventPayloads {
  'prefs-changed': PrefsView;
  'prefs-applied': ApplyReport;
}

const areas = z.array(z.enum(['printers', 'displays', 'network'])).min(1).optional();

export const prefsMethods = {
  'prefs.get': method<PrefsView>()(z.object({}).strict()),
  /** `value` is validated against the key's schema by the store (the message names the problem). */
  'prefs.set': method<PrefsView>()(z.object({ key: z.string().min(1).max(100), value: z.unknown() }).strict()),
  'prefs.export': method<UserPrefsFile>()(z.object({}).strict()),
  'prefs.import': method<{ view: PrefsView; skippedLocked: PrefLeaf[] }>()(z.object({ doc: z.unknown() }).strict()),
  'prefs.state': method<PrefsCurrentState>()(z.object({}).strict()),
  'prefs.apply': method<ApplyReport>()(z.object({ dryRun: z.boolean().optional(), areas }).strict()),
  /** Saves the given layout as the profile for the monitors it names (replacing one for the same set). */
  'prefs.saveDisplayProfile': method<PrefsView>()(z.object({ profile: displayProfileSchema }).strict()),
  /** Adds or replaces a network profile; its secret (if any) goes to the keyring, never to the file. */
  'prefs.saveNetworkProfile': method<PrefsView>()(z.object({ profile: networkProfileSchema, secret: z.string().max(1024).optional() }).strict()),
};
