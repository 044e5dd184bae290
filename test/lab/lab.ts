// What every laptop backend of the lab shares: the scenario list it declares, the one-line
// held/failed/skipped reports, the figures, and the choice of scenarios (TABULA_LAB_SCENARIOS).
// A backend (rsync-tree-laptop.ts, ostree-*.ts) boots its own laptop and walks its scenarios in
// order; run-lab.ts lists the backends and walks them one after the other (one VM at a time).
import type { Accel, Vm } from './vm';
import { sleep } from './vm';

export type Outcome = 'held' | 'failed' | 'skipped';

export interface LabResult {
  backend: string;
  id: string;
  title: string;
  outcome: Outcome;
  detail: string;
  /** Wall-clock seconds the scenario took (held or failed), for the budget. */
  seconds?: number;
}

/** What a backend gets from run-lab.ts. */
export interface LabContext {
  /** A fresh folder for this backend's run (removed afterwards unless TABULA_LAB_KEEP is set). */
  work: string;
  /** The cached Debian base tree (test/lab/build-base.sh). */
  base: string;
  /** `npm run package:deb` output, or null where the packager is absent. */
  deb: string | null;
  /** How the VMs run here (the KVM probe decided). */
  accel: Accel;
  log(s: string): void;
}

export interface LabBackend {
  /** Shown in every line: `lab <name> (<id>) <title>: held`. */
  name: string;
  /** id → what the scenario shows, in the order the laptop walks them. */
  scenarios: Record<string, string>;
  /** The scenarios seen to hold here end to end: `npm test` runs these, the others count as skipped. */
  defaults: readonly string[];
  /** Why a scenario stays out of the defaults, for its skip line (a generic reason where absent). */
  outOfDefault?: Record<string, string>;
  /** Builds and boots the laptop, and walks the chosen scenarios (`run.wants(id)`) in order. */
  walk(ctx: LabContext, run: ScenarioRun): Promise<void>;
}

export interface ScenarioRun {
  backend: string;
  /** Is this scenario chosen for this run? */
  wants(id: string): boolean;
  /** Runs one chosen scenario (a no-op otherwise); a failure is recorded with its reason and the walk goes on. */
  scenario(id: string, vm: Vm | null, fn: () => Promise<string | void>): Promise<boolean>;
  /** Records an outcome directly (first record of an id wins). */
  record(id: string, outcome: Outcome, detail: string, vm?: Vm | null, seconds?: number): void;
  /** Marks every chosen scenario not yet recorded as failed, with one reason (the laptop did not boot…). */
  failRest(reason: string): void;
  figure(name: string, value: string): void;
}

export interface LabReport {
  results: LabResult[];
  figures: Record<string, string>;
}

/**
 * TABULA_LAB_SCENARIOS: unset → each backend's defaults; `all`; or a comma list whose items are an
 * id (`b`: every backend), `<backend>:<id>` or `<backend>:all` (e.g. `rsync-tree:all,ostree:a`).
 */
export function chosenScenarios(spec: string | undefined, backend: LabBackend): Set<string> {
  const ids = Object.keys(backend.scenarios);
  if (spec === undefined || spec === '') return new Set(backend.defaults);
  const out = new Set<string>();
  for (const raw of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [b, id] = raw.includes(':') ? (raw.split(':', 2) as [string, string]) : [null, raw];
    if (b !== null && b !== backend.name) continue;
    if (id === 'all') ids.forEach((i) => out.add(i));
    else if (id === 'default') backend.defaults.forEach((i) => out.add(i));
    else if (ids.includes(id)) out.add(id);
  }
  return out;
}

/** `finish()` reports (and counts) the scenarios not chosen as skipped, with `why(id)`. */
export function createScenarioRun(backend: LabBackend, chosen: Set<string>, report: LabReport, why: (id: string) => string): ScenarioRun & { finish(): void } {
  const name = backend.name;
  const title = (id: string) => backend.scenarios[id] ?? id;
  const run: ScenarioRun & { finish(): void } = {
    backend: name,
    wants: (id) => chosen.has(id),
    record(id, outcome, detail, vm, seconds) {
      if (report.results.some((r) => r.backend === name && r.id === id)) return;
      // A power-cycle or a reboot asked twice since the last line: said in this scenario's line.
      const notes = vm?.takeNotes() ?? [];
      if (notes.length) detail = [detail, ...notes].filter(Boolean).join('; ');
      report.results.push({ backend: name, id, title: title(id), outcome, detail, ...(seconds !== undefined ? { seconds } : {}) });
      const took = seconds !== undefined ? `${seconds} s` : '';
      const head = `lab ${name} (${id}) ${title(id)}: ${outcome}`;
      if (outcome === 'held') console.log(`${head} (${[took, detail].filter(Boolean).join('; ')})`);
      else if (outcome === 'skipped') console.log(`${head} (${detail})`);
      else {
        console.log(`${head}${took ? ` (after ${took})` : ''}\n    ${detail.split('\n').join('\n    ')}`);
        if (vm && !detail.includes('Serial console')) console.log(`    serial console (last lines):\n${vm.consoleTail(25).replace(/^/gm, '      ')}`);
      }
    },
    async scenario(id, vm, fn) {
      if (!chosen.has(id)) return false;
      const t0 = Date.now();
      const secs = () => Math.round((Date.now() - t0) / 1000);
      try {
        const detail = (await fn()) ?? '';
        run.record(id, 'held', detail, vm, secs());
        return true;
      } catch (err) {
        run.record(id, 'failed', (err as Error).message, vm, secs());
        return false;
      }
    },
    failRest(reason) {
      for (const id of Object.keys(backend.scenarios)) if (chosen.has(id)) run.record(id, 'failed', reason);
    },
    figure(k, v) {
      report.figures[`${name}: ${k}`] = v;
      // Printed as measured too: a walk cut short still shows what it measured.
      console.log(`  lab figure: ${name}: ${k}: ${v}`);
    },
    finish() {
      for (const id of Object.keys(backend.scenarios)) if (!chosen.has(id)) run.record(id, 'skipped', why(id));
    },
  };
  return run;
}

/** Polls `probe` every 2 s until it gives a value; throws `what` with the last error otherwise. */
export async function waitFor<T>(probe: () => Promise<T | null | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const t0 = Date.now();
  let last: unknown = null;
  while (Date.now() - t0 < timeoutMs) {
    try {
      const v = await probe();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await sleep(2000);
  }
  throw new Error(`${what} within ${Math.round(timeoutMs / 1000)} s${last ? ` (last: ${(last as Error).message.slice(0, 500)})` : ''}`);
}
