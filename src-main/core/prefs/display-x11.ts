// Displays on X11: read with `xrandr --verbose`, applied with xrandr.
import type { ApplyItem, MonitorState } from '../../common/contract/prefs';
import type { DisplaysPrefs } from '../../common/prefs-schema';
import { monitorIdentity, parseEdid, type EdidInfo } from './display-edid';
import { planDisplays } from './display-plan';
import { firstLine, runTool } from './run-tool';

export interface XrandrOutput extends MonitorState {
  edid: EdidInfo | null;
}

/** Parses `xrandr --verbose`: connected outputs with EDID, geometry, modes and refresh rates. */
export function parseXrandrVerbose(text: string): XrandrOutput[] {
  const outputs: XrandrOutput[] = [];
  const lines = text.split('\n');
  let cur: (XrandrOutput & { widthMm: number; heightMm: number; edidHex: string }) | null = null;
  let inEdid = false;
  let pendingMode: { width: number; height: number; current: boolean; preferred: boolean } | null = null;
  const finish = () => {
    if (!cur) return;
    const edid = cur.edidHex ? parseEdid(Buffer.from(cur.edidHex, 'hex')) : null;
    const { widthMm, heightMm, ...rest } = cur;
    delete (rest as Partial<typeof cur>).edidHex;
    outputs.push({ ...rest, edid, monitor: monitorIdentity(edid, widthMm, heightMm, cur.connector), label: edid?.name ?? (edid ? `${edid.vendor} ${edid.product}` : widthMm && heightMm ? `${widthMm}x${heightMm}mm monitor` : cur.connector) });
    cur = null;
  };
  for (const line of lines) {
    const head = /^(\S+) (connected|disconnected)( primary)?(?: (\d+)x(\d+)\+(\d+)\+(\d+))?(?: \(0x[0-9a-f]+\))?(?: (normal|left|inverted|right))?.*?(?:(\d+)mm x (\d+)mm)?\s*$/.exec(line);
    if (head && !line.startsWith(' ') && !line.startsWith('\t')) {
      finish();
      inEdid = false;
      if (head[2] !== 'connected') continue;
      cur = {
        connector: head[1]!,
        monitor: '',
        label: '',
        enabled: head[4] !== undefined,
        width: Number(head[4] ?? 0),
        height: Number(head[5] ?? 0),
        refresh: null,
        x: Number(head[6] ?? 0),
        y: Number(head[7] ?? 0),
        rotation: (head[8] as XrandrOutput['rotation']) ?? 'normal',
        primary: !!head[3],
        modes: [],
        edid: null,
        widthMm: Number(head[9] ?? 0),
        heightMm: Number(head[10] ?? 0),
        edidHex: '',
      };
      continue;
    }
    if (!cur) continue;
    const c = cur as XrandrOutput & { widthMm: number; heightMm: number; edidHex: string };
    if (/^\tEDID:/.test(line)) {
      inEdid = true;
      continue;
    }
    if (inEdid) {
      const hex = /^\t\t([0-9a-f]+)\s*$/.exec(line);
      if (hex) {
        c.edidHex += hex[1];
        continue;
      }
      inEdid = false;
    }
    const prop = /^\t(WIDTH_MM|HEIGHT_MM): (\d+)/.exec(line);
    if (prop) {
      if (prop[1] === 'WIDTH_MM' && !c.widthMm) c.widthMm = Number(prop[2]);
      if (prop[1] === 'HEIGHT_MM' && !c.heightMm) c.heightMm = Number(prop[2]);
      continue;
    }
    const mode = /^ {2}(\d+)x(\d+)i? \(0x[0-9a-f]+\).*?(\*current)?(\s+\+preferred)?\s*$/.exec(line);
    if (mode) {
      pendingMode = { width: Number(mode[1]), height: Number(mode[2]), current: !!mode[3], preferred: !!mode[4] };
      continue;
    }
    const vline = /^ {8}v:.*clock\s+([\d.]+)Hz/.exec(line);
    if (vline && pendingMode) {
      const refresh = Math.round(Number(vline[1]) * 100) / 100;
      const m = { width: pendingMode.width, height: pendingMode.height, refresh };
      if (pendingMode.preferred) c.modes.unshift(m);
      else c.modes.push(m);
      if (pendingMode.current) c.refresh = refresh;
      pendingMode = null;
    }
  }
  finish();
  return outputs;
}

export function createX11Displays(env: NodeJS.ProcessEnv) {
  /** `cached`: what the X server last saw, without probing outputs again (cheap enough to poll). */
  async function read(cached = false): Promise<{ monitors: MonitorState[]; problem: string | null }> {
    const r = await runTool('xrandr', cached ? ['--current', '--verbose'] : ['--verbose'], { env });
    if (r.missing) return { monitors: [], problem: 'xrandr is not installed, so the display layout cannot be read or set.' };
    if (r.code !== 0) return { monitors: [], problem: `The display ${env.DISPLAY} cannot be reached: ${firstLine(r.stderr) || 'xrandr failed'}.` };
    return {
      monitors: parseXrandrVerbose(r.stdout).map((o) => {
        const m: Partial<XrandrOutput> = { ...o };
        delete m.edid;
        return m as MonitorState;
      }),
      problem: null,
    };
  }

  async function apply(prefs: DisplaysPrefs, monitors: MonitorState[], dryRun: boolean): Promise<ApplyItem[]> {
    const plan = planDisplays(prefs, monitors);
    if (dryRun || !plan.xrandrArgs.length) return plan.items;
    const r = await runTool('xrandr', plan.xrandrArgs, { env });
    if (r.code !== 0) {
      const why = firstLine(r.stderr) || `xrandr exited with ${r.code}`;
      const hint = plan.xrandrArgs.includes('--scale') ? ' (this display server cannot scale outputs)' : '';
      return plan.items.map((i) => ({ ...i, status: 'failed' as const, reason: `The display server refused the layout: ${why}${hint}.` }));
    }
    return plan.items.map((i) => (i.status === 'planned' ? { ...i, status: 'applied' as const } : i));
  }

  return { read, apply };
}
