// The booted image's identity, from os-release (IMAGE_ID/IMAGE_VERSION, the fields image-based
// systems set; VERSION_ID when they are absent).
import fs from 'node:fs';
import type { ImageStatus } from '../common/contract';

/** os-release is a shell-compatible KEY=value file; values may be quoted with ' or " and use \-escapes. */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2]!;
    const q = value[0];
    if ((q === '"' || q === "'") && value.endsWith(q) && value.length >= 2) {
      value = value.slice(1, -1);
      if (q === '"') value = value.replace(/\\(["\\$`])/g, '$1');
    }
    fields[m[1]!] = value;
  }
  return fields;
}

export function readImageStatus(files: string[]): ImageStatus {
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const f = parseOsRelease(text);
    return {
      name: f.PRETTY_NAME || f.NAME || 'Linux',
      id: f.IMAGE_ID || f.ID || null,
      version: f.IMAGE_VERSION || f.VERSION_ID || 'unknown',
      source: file,
      problem: null,
    };
  }
  return {
    name: 'Unknown image',
    id: null,
    version: 'unknown',
    source: files[0] ?? '',
    problem: `Could not read the image identity from ${files.join(' or ')}.`,
  };
}
