// The user's preferences as stored in ~/.config/tabula/prefs.json (schema version 2), shared by the
// agent (validation on read and write) and the window (inline validation with the same rules).
// Printers are remembered by URI / DNS-SD name and monitors by identity (EDID), never by the local
// queue or connector name: the next laptop has other names for the same things.
import { z } from 'zod';

export const PREFS_VERSION = 2;

// ---- Printers ----------------------------------------------------------------------------------

export const printerRefSchema = z.strictObject({
  /** The device URI the queue prints to (ipp://…, socket://…, dnssd://…). */
  uri: z.string().min(3).max(2048).regex(/^[a-z][a-z0-9+.-]*:\S+$/i, 'must be a printer URI such as ipp://printer.example/ipp/print'),
  /** The DNS-SD service name ("Office LaserJet"), matched when the URI differs (another subnet). */
  dnssdName: z.string().min(1).max(255).optional(),
  /** What a person called it, for display. */
  label: z.string().max(200).optional(),
});
export type PrinterRef = z.infer<typeof printerRefSchema>;

export const printerOptionsSchema = z.strictObject({
  duplex: z.enum(['one-sided', 'two-sided-long-edge', 'two-sided-short-edge']).optional(),
  /** An IPP/PPD media name: A4, Letter, iso_a5_148x210mm… */
  media: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a paper size name such as A4 or Letter').optional(),
  color: z.enum(['color', 'monochrome']).optional(),
});
export type PrinterOptions = z.infer<typeof printerOptionsSchema>;

export const printersPrefsSchema = z.strictObject({
  default: printerRefSchema.nullable(),
  options: z.array(z.strictObject({ printer: printerRefSchema, options: printerOptionsSchema })).max(200),
});
export type PrintersPrefs = z.infer<typeof printersPrefsSchema>;

// ---- Displays ----------------------------------------------------------------------------------

/** "edid:<hash>" for a monitor with an EDID; "size:<w>x<h>mm" or "connector:<name>" as fallbacks. */
export const monitorIdSchema = z.string().regex(/^(edid:[0-9a-f]{16}|size:\d+x\d+mm|connector:[A-Za-z0-9_.-]{1,64})$/, 'must be a monitor identity');

export const displayOutputSchema = z.strictObject({
  monitor: monitorIdSchema,
  /** For display only ("Dell U2720Q"): the name may come from the EDID. */
  label: z.string().max(200).optional(),
  enabled: z.boolean(),
  width: z.number().int().min(320).max(16384),
  height: z.number().int().min(200).max(16384),
  /** Hz; null = the monitor's preferred rate for that size. */
  refresh: z.number().min(1).max(1000).nullable(),
  x: z.number().int().min(0).max(65535),
  y: z.number().int().min(0).max(65535),
  scale: z.number().min(0.5).max(4),
  rotation: z.enum(['normal', 'left', 'right', 'inverted']),
  primary: z.boolean(),
});
export type DisplayOutput = z.infer<typeof displayOutputSchema>;

export const displayProfileSchema = z
  .strictObject({
    name: z.string().min(1).max(100),
    outputs: z.array(displayOutputSchema).min(1).max(16),
  })
  .superRefine((p, ctx) => {
    const ids = p.outputs.map((o) => o.monitor);
    if (new Set(ids).size !== ids.length) ctx.addIssue({ code: 'custom', message: 'lists the same monitor twice', path: ['outputs'] });
    if (p.outputs.filter((o) => o.primary).length > 1) ctx.addIssue({ code: 'custom', message: 'has more than one primary monitor', path: ['outputs'] });
    if (!p.outputs.some((o) => o.enabled)) ctx.addIssue({ code: 'custom', message: 'turns every monitor off', path: ['outputs'] });
  });
export type DisplayProfile = z.infer<typeof displayProfileSchema>;

/** A profile's key: the sorted set of monitor identities it was saved for. */
export function profileKey(monitors: readonly string[]): string {
  return [...monitors].sort().join('+');
}

export const displaysPrefsSchema = z.strictObject({
  profiles: z.array(displayProfileSchema).max(100),
});
export type DisplaysPrefs = z.infer<typeof displaysPrefsSchema>;

// ---- Network -----------------------------------------------------------------------------------

// IEEE 802.11: an SSID is 1–32 bytes. A WPA passphrase is 8–63 printable ASCII, or 64 hex digits.
const ssidSchema = z.string().refine((s) => {
  const n = new TextEncoder().encode(s).length;
  return n >= 1 && n <= 32;
}, 'must be 1 to 32 bytes long');

// Names and identities go into NetworkManager, D-Bus and messages: printable text only.
const printable = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((v) => ![...v].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f), 'must not contain control characters');

export const wifiProfileSchema = z.strictObject({
  kind: z.literal('wifi'),
  name: printable(100),
  ssid: ssidSchema,
  security: z.enum(['open', 'wpa2-personal', 'wpa3-personal', 'wpa2-enterprise-peap']),
  /** PEAP/MSCHAPv2 identity; the password lives in the keyring. */
  identity: printable(255).optional(),
  /** Absolute path to the CA certificate for enterprise networks (it goes into NetworkManager's settings: one line). */
  caCert: printable(4096).refine((v) => v.startsWith('/'), 'must be an absolute path').optional(),
  /**
   * PEAP without a CA certificate: the server is not checked, so anyone nearby can pose as the
   * network and collect the password. Only by this explicit choice (GNOME: "No CA certificate is required").
   */
  noCaCertificate: z.literal(true).optional(),
  hidden: z.boolean().optional(),
  autoconnect: z.boolean(),
});
export const wireguardPeerSchema = z.strictObject({
  publicKey: z.string().regex(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$/, 'must be a WireGuard key (44 characters of base64)'),
  endpoint: z.string().regex(/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'must be host:port').optional(),
  allowedIps: z.array(z.string().regex(/^[0-9a-fA-F.:]+\/\d{1,3}$/, 'must be an address/prefix')).min(1),
});
export const wireguardProfileSchema = z.strictObject({
  kind: z.literal('wireguard'),
  name: printable(100),
  /** Interface name on the laptop, 1–15 characters. */
  interface: z.string().regex(/^[A-Za-z0-9_-]{1,15}$/, 'must be 1 to 15 letters, digits, _ or -'),
  addresses: z.array(z.string().regex(/^[0-9a-fA-F.:]+\/\d{1,3}$/, 'must be an address/prefix')).min(1),
  peers: z.array(wireguardPeerSchema).min(1).max(32),
  autoconnect: z.boolean(),
});
export const networkProfileSchema = z.discriminatedUnion('kind', [wifiProfileSchema, wireguardProfileSchema]).superRefine((p, ctx) => {
  if (p.kind === 'wifi' && p.security === 'wpa2-enterprise-peap' && !p.identity) {
    ctx.addIssue({ code: 'custom', message: 'needs an identity (user name) for WPA2-Enterprise', path: ['identity'] });
  }
  if (p.kind === 'wifi' && p.security === 'wpa2-enterprise-peap' && !p.caCert && !p.noCaCertificate) {
    ctx.addIssue({ code: 'custom', message: "needs a CA certificate to check the network's server, or the explicit choice not to check it (noCaCertificate)", path: ['caCert'] });
  }
  if (p.kind === 'wifi' && p.caCert && p.noCaCertificate) {
    ctx.addIssue({ code: 'custom', message: 'names a CA certificate and also says not to check the server: choose one', path: ['noCaCertificate'] });
  }
});
export type NetworkProfile = z.infer<typeof networkProfileSchema>;
export type WifiProfile = z.infer<typeof wifiProfileSchema>;
export type WireguardProfile = z.infer<typeof wireguardProfileSchema>;

export const networkPrefsSchema = z.strictObject({
  profiles: z.array(networkProfileSchema).max(200),
});

/** A WPA-Personal key: 8–63 printable ASCII characters, or exactly 64 hex digits. */
export function pskProblem(psk: string): string | null {
  if (/^[0-9a-fA-F]{64}$/.test(psk)) return null;
  if (!/^[\x20-\x7e]*$/.test(psk)) return 'A Wi-Fi password may only contain printable ASCII characters.';
  if (psk.length < 8 || psk.length > 63) return 'A Wi-Fi password must be 8 to 63 characters long.';
  return null;
}

// ---- The whole document ------------------------------------------------------------------------

export const prefsSchema = z.strictObject({
  version: z.literal(PREFS_VERSION),
  printers: printersPrefsSchema,
  displays: displaysPrefsSchema,
  network: networkPrefsSchema,
});
export type Prefs = z.infer<typeof prefsSchema>;

/** The user's file: only the keys the user set (a fleet or image default fills the rest). */
export const userPrefsFileSchema = z.strictObject({
  version: z.literal(PREFS_VERSION),
  printers: printersPrefsSchema.partial().optional(),
  displays: displaysPrefsSchema.partial().optional(),
  network: networkPrefsSchema.partial().optional(),
});
export type UserPrefsFile = z.infer<typeof userPrefsFileSchema>;

export function emptyPrefs(): Prefs {
  return { version: PREFS_VERSION, printers: { default: null, options: [] }, displays: { profiles: [] }, network: { profiles: [] } };
}

/** The keys `prefs get/set` and the fleet lock address: a section, or one field of a section. */
export const prefKeys = ['printers', 'printers.default', 'printers.options', 'displays', 'displays.profiles', 'network', 'network.profiles'] as const;
export type PrefKey = (typeof prefKeys)[number];
export function isPrefKey(key: string): key is PrefKey {
  return (prefKeys as readonly string[]).includes(key);
}
