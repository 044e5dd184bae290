// Monitors are known by their EDID (maker, model, serial), not by connector name: the next laptop
// calls the same monitor HDMI-2 instead of DP-1. Shared by the X11 and GNOME backends.
import crypto from 'node:crypto';

export interface EdidInfo {
  vendor: string;
  product: string;
  serial: string;
  name: string | null;
  /** Stable identity: a hash of vendor, product and serial (bytes 8–15), the same on every port. */
  id: string;
}

export function parseEdid(bytes: Buffer): EdidInfo | null {
  if (bytes.length < 128 || bytes.readUInt32BE(0) !== 0x00ffffff || bytes.readUInt32BE(4) !== 0xffffff00) return null;
  const m = bytes.readUInt16BE(8);
  const vendor = [(m >> 10) & 31, (m >> 5) & 31, m & 31].map((c) => String.fromCharCode(64 + c)).join('');
  const product = String(bytes.readUInt16LE(10));
  let serial = String(bytes.readUInt32LE(12));
  let name: string | null = null;
  for (const off of [54, 72, 90, 108]) {
    if (bytes[off] !== 0 || bytes[off + 1] !== 0) continue;
    const text = bytes.subarray(off + 5, off + 18).toString('latin1').split('\n')[0]!.trim();
    if (bytes[off + 3] === 0xfc) name = text;
    if (bytes[off + 3] === 0xff && text) serial = text;
  }
  const id = 'edid:' + crypto.createHash('sha256').update(bytes.subarray(8, 16)).digest('hex').slice(0, 16);
  return { vendor, product, serial, name, id };
}

/** The identity used as a profile key: EDID first; physical size, then connector, where there is none. */
export function monitorIdentity(edid: EdidInfo | null, widthMm: number, heightMm: number, connector: string): string {
  if (edid) return edid.id;
  if (widthMm > 0 && heightMm > 0) return `size:${widthMm}x${heightMm}mm`;
  return `connector:${connector.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64)}`;
}
