// Printers: the user's default printer and options, written as the per-user CUPS lpoptions file
// (~/.cups/lpoptions, read by every CUPS client: lp, GTK and Qt print dialogs). Printers are
// remembered by device URI or DNS-SD name and matched to whatever queue this laptop has for them.
import fs from 'node:fs';
import path from 'node:path';
import type { ApplyItem, PrinterDest } from '../../common/contract/prefs';
import type { PrinterOptions, PrinterRef, PrintersPrefs } from '../../common/prefs-schema';
import { writeFileAtomic } from '../atomic-file';
import { firstLine, runTool } from './run-tool';

// ---- lpoptions file -------------------------------------------------------------------------

export interface LpoptionsLine {
  kind: 'Default' | 'Dest';
  queue: string;
  /** Instance after the slash (`Dest q/draft`), kept as it is. */
  instance: string | null;
  options: [string, string][];
}
export type LpoptionsFile = { lines: (LpoptionsLine | { raw: string })[] };

function splitWords(text: string): string[] {
  const words: string[] = [];
  const re = /(?:[^\s'"]+|'[^']*'|"[^"]*")+/g;
  for (const m of text.matchAll(re)) words.push(m[0]);
  return words;
}
const unquote = (v: string) => v.replace(/^'(.*)'$|^"(.*)"$/, (_m, a, b) => a ?? b);
const quote = (v: string) => (/^[^\s'"\\]+$/.test(v) ? v : `'${v.replace(/'/g, '')}'`);

export function parseLpoptions(text: string): LpoptionsFile {
  const lines: LpoptionsFile['lines'] = [];
  for (const raw of text.split('\n')) {
    const m = /^(Default|Dest)\s+(\S+)\s*(.*)$/i.exec(raw.trim());
    if (!m) {
      if (raw.trim()) lines.push({ raw });
      continue;
    }
    const [queue, instance] = m[2]!.split('/', 2) as [string, string | undefined];
    const options = splitWords(m[3]!).map((w): [string, string] => {
      const eq = w.indexOf('=');
      return eq < 0 ? [w, ''] : [w.slice(0, eq), unquote(w.slice(eq + 1))];
    });
    lines.push({ kind: m[1]!.toLowerCase() === 'default' ? 'Default' : 'Dest', queue, instance: instance ?? null, options });
  }
  return { lines };
}

export function renderLpoptions(file: LpoptionsFile): string {
  return (
    file.lines
      .map((l) => ('raw' in l ? l.raw : [`${l.kind} ${l.queue}${l.instance ? '/' + l.instance : ''}`, ...l.options.map(([k, v]) => (v ? `${k}=${quote(v)}` : k))].join(' ')))
      .join('\n') + (file.lines.length ? '\n' : '')
  );
}

/** The three options Tabula manages, in CUPS/IPP terms. */
const optionNames: Record<keyof PrinterOptions, string> = { duplex: 'sides', media: 'media', color: 'print-color-mode' };

export function optionsOf(file: LpoptionsFile, queue: string): PrinterOptions {
  const line = file.lines.find((l): l is LpoptionsLine => !('raw' in l) && l.queue === queue && !l.instance);
  const get = (name: string) => line?.options.find(([k]) => k === name)?.[1];
  const out: PrinterOptions = {};
  const sides = get('sides');
  if (sides === 'one-sided' || sides === 'two-sided-long-edge' || sides === 'two-sided-short-edge') out.duplex = sides;
  const media = get('media');
  if (media) out.media = media;
  const color = get('print-color-mode');
  if (color === 'color' || color === 'monochrome') out.color = color;
  return out;
}

export function defaultQueueOf(file: LpoptionsFile): string | null {
  const line = file.lines.find((l): l is LpoptionsLine => !('raw' in l) && l.kind === 'Default');
  return line ? line.queue : null;
}

// ---- matching -------------------------------------------------------------------------------

/** The DNS-SD service name in a dnssd:// URI ("Office LaserJet"), or null. */
export function dnssdNameOf(uri: string): string | null {
  const m = /^dnssd:\/\/([^/]+?)\._(?:ipps?|printer|pdl-datastream)\._tcp/i.exec(uri);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return m[1]!;
  }
}

const normUri = (uri: string) => uri.replace(/\/+$/, '').replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/]+)/i, (_m, s: string, h: string) => s.toLowerCase() + h.toLowerCase());

/** The queue on this laptop for a remembered printer: same URI first, then the same DNS-SD name. */
export function matchPrinter(ref: PrinterRef, dests: readonly Pick<PrinterDest, 'queue' | 'uri' | 'dnssdName'>[]): string | null {
  const sorted = [...dests].sort((a, b) => a.queue.localeCompare(b.queue));
  const byUri = sorted.find((d) => normUri(d.uri) === normUri(ref.uri));
  if (byUri) return byUri.queue;
  const name = (ref.dnssdName ?? dnssdNameOf(ref.uri))?.toLowerCase();
  if (!name) return null;
  return sorted.find((d) => (d.dnssdName ?? dnssdNameOf(d.uri))?.toLowerCase() === name)?.queue ?? null;
}

export const printerLabel = (ref: PrinterRef) => ref.label ?? ref.dnssdName ?? dnssdNameOf(ref.uri) ?? ref.uri;

// ---- the planner (pure) ---------------------------------------------------------------------

export interface PrinterPlan {
  /** The lpoptions file after applying; equal to the input when nothing changes. */
  file: LpoptionsFile;
  changed: boolean;
  items: ApplyItem[];
}

export function planPrinters(prefs: PrintersPrefs, dests: readonly PrinterDest[], current: LpoptionsFile): PrinterPlan {
  const items: ApplyItem[] = [];
  let lines = current.lines.map((l) => ('raw' in l ? l : { ...l, options: [...l.options] }));
  const item = (name: string, action: string, status: ApplyItem['status'], reason: string | null = null) =>
    items.push({ area: 'printers', item: name, action, status, reason });

  const lineFor = (queue: string): LpoptionsLine => {
    let line = lines.find((l): l is LpoptionsLine => !('raw' in l) && l.queue === queue && !l.instance);
    if (!line) {
      line = { kind: 'Dest', queue, instance: null, options: [] };
      lines.push(line);
    }
    return line;
  };

  if (prefs.default) {
    const queue = matchPrinter(prefs.default, dests);
    const label = printerLabel(prefs.default);
    if (!queue) {
      item('Default printer', `make ${label} the default`, 'skipped', `${label} (${prefs.default.uri}) is not available on this laptop, so the default printer was left as it is.`);
    } else if (defaultQueueOf({ lines }) === queue) {
      item('Default printer', `${label} is the default (queue ${queue})`, 'unchanged');
    } else {
      lines = lines.map((l) => ('raw' in l || l.kind !== 'Default' ? l : { ...l, kind: 'Dest' as const }));
      lineFor(queue).kind = 'Default';
      item('Default printer', `make ${label} the default (queue ${queue})`, 'planned');
    }
  }

  for (const { printer, options } of prefs.options) {
    const label = printerLabel(printer);
    const name = `Options for ${label}`;
    const queue = matchPrinter(printer, dests);
    if (!queue) {
      item(name, 'set duplex, paper size and colour', 'skipped', `${label} (${printer.uri}) is not available on this laptop; its options are kept for when it is.`);
      continue;
    }
    const dest = dests.find((d) => d.queue === queue)!;
    if (options.media && dest.media.length && !dest.media.some((m) => m.toLowerCase() === options.media!.toLowerCase())) {
      item(name, `paper size ${options.media}`, 'failed', `${label} does not offer the paper size "${options.media}" (it offers ${dest.media.join(', ')}).`);
      continue;
    }
    const have = optionsOf({ lines }, queue);
    const changes = (Object.keys(optionNames) as (keyof PrinterOptions)[]).filter((k) => options[k] !== undefined && options[k] !== have[k]);
    if (!changes.length) {
      item(name, `already set on queue ${queue}`, 'unchanged');
      continue;
    }
    const line = lineFor(queue);
    for (const k of changes) {
      const ipp = optionNames[k];
      line.options = [...line.options.filter(([o]) => o !== ipp), [ipp, String(options[k])]];
    }
    item(name, `set ${changes.map((k) => `${k} ${options[k]}`).join(', ')} on queue ${queue}`, 'planned');
  }
  const file = { lines };
  return { file, changed: renderLpoptions(file) !== renderLpoptions(current), items };
}

// ---- reading and applying -------------------------------------------------------------------

export interface PrintersApplierOptions {
  home: string;
  env?: NodeJS.ProcessEnv;
}

export function createPrintersApplier({ home, env }: PrintersApplierOptions) {
  // CUPS reads ~/.cups/lpoptions for every user (CUPS 2.x; $CUPS_USERCONFIG can move it).
  const lpoptionsFile = path.join(home, '.cups', 'lpoptions');

  function readFile(): LpoptionsFile {
    try {
      return parseLpoptions(fs.readFileSync(lpoptionsFile, 'utf8'));
    } catch {
      return { lines: [] };
    }
  }

  async function media(queue: string): Promise<string[]> {
    const r = await runTool('lpoptions', ['-p', queue, '-l'], { env: { ...env, HOME: home } });
    const line = r.stdout.split('\n').find((l) => /^PageSize\//.test(l));
    return line ? line.split(':')[1]!.trim().split(/\s+/).map((m) => m.replace(/^\*/, '')) : [];
  }

  /** The CUPS destinations, or a reason they cannot be listed (no scheduler, no CUPS tools). */
  async function read(): Promise<{ dests: PrinterDest[]; problem: string | null }> {
    const r = await runTool('lpstat', ['-v'], { env: { ...env, HOME: home } });
    if (r.missing) return { dests: [], problem: 'The CUPS client tools (lpstat) are not installed, so printers cannot be set up.' };
    if (r.code !== 0 && !/no destinations/i.test(r.stdout + r.stderr)) {
      const why = firstLine(r.stderr) || firstLine(r.stdout);
      return { dests: [], problem: /not running|connect/i.test(why) ? 'The printing service (CUPS) is not running, so printers cannot be listed.' : `Printers cannot be listed: ${why}` };
    }
    const file = readFile();
    const def = defaultQueueOf(file);
    const dests: PrinterDest[] = [];
    for (const line of r.stdout.split('\n')) {
      const m = /^device for (.+?): (.+)$/.exec(line.trim());
      if (!m) continue;
      const [, queue, uri] = m as unknown as [string, string, string];
      dests.push({ queue, uri, dnssdName: dnssdNameOf(uri), info: null, isDefault: queue === def, options: optionsOf(file, queue), media: await media(queue) });
    }
    if (!def) {
      const d = await runTool('lpstat', ['-d'], { env: { ...env, HOME: home } });
      const sys = /destination: (\S+)/i.exec(d.stdout)?.[1];
      for (const dest of dests) dest.isDefault = dest.queue === sys;
    }
    return { dests, problem: null };
  }

  async function apply(prefs: PrintersPrefs, dryRun: boolean): Promise<ApplyItem[]> {
    if (!prefs.default && !prefs.options.length) return [];
    const { dests, problem } = await read();
    if (problem) return [{ area: 'printers', item: 'Printers', action: 'set the default printer and options', status: 'skipped', reason: problem }];
    const plan = planPrinters(prefs, dests, readFile());
    if (dryRun || !plan.changed) return plan.items;
    try {
      writeFileAtomic(lpoptionsFile, renderLpoptions(plan.file), 0o644);
    } catch (err) {
      const reason = `Your printer settings could not be saved in ${lpoptionsFile}: ${(err as Error).message}`;
      return plan.items.map((i) => (i.status === 'planned' ? { ...i, status: 'failed' as const, reason } : i));
    }
    return plan.items.map((i) => (i.status === 'planned' ? { ...i, status: 'applied' as const } : i));
  }

  return { lpoptionsFile, read, apply };
}
