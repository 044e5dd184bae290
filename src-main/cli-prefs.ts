// `tabula prefs …`: read, change, apply, export and import the user's preferences. Talks to the
// running agent when there is one (so an open window sees the change at once), and otherwise does
// the work in-process: `tabula prefs apply` from the XDG autostart entry runs before any agent.
import fs from 'node:fs';
import type { ApiClient } from './common/contract';
import type { ApplyReport, PrefArea } from './common/contract/prefs';
import { createInProcessClient } from './common/clients';
import { TabulaError } from './common/errors';
import { createAgent } from './core/agent';
import { readSmallRegularFile, writeFileAtomic } from './core/atomic-file';

export const prefsUsage = `  tabula prefs get [KEY]                 show preferences (KEY: printers.default, printers.options,
                                         displays.profiles, network.profiles, or a section)
  tabula prefs set KEY VALUE             set a key (VALUE is JSON; printers.default also takes a URI)
  tabula prefs apply [--dry-run] [--only printers,displays,network]
                                         apply the preferences now (what login does)
  tabula prefs export [FILE]             write your preferences as JSON (stdout without FILE)
  tabula prefs import FILE|-             replace your preferences with an exported file
  tabula prefs secret NAME               save the password/key of network profile NAME (read from stdin)`;

const statusWord: Record<ApplyReport['items'][number]['status'], string> = {
  applied: 'Applied',
  unchanged: 'Already so',
  planned: 'Would apply',
  failed: 'Failed',
  skipped: 'Not applied',
};

export function formatReport(report: ApplyReport): string {
  if (!report.items.length) return 'Nothing to apply: no printer, display or network preferences are saved.';
  return report.items.map((i) => `${statusWord[i.status].padEnd(12)} ${i.item}: ${i.action}${i.reason ? `\n${' '.repeat(13)}${i.reason}` : ''}`).join('\n');
}

/** The file the person named (a link they chose is followed), read like any other: capped, regular only. */
function readImportFile(file: string): string {
  let real = file;
  try {
    real = fs.realpathSync(file);
  } catch {
    /* reported by the read below */
  }
  const read = readSmallRegularFile(real);
  if (read.status === 'ok') return read.data.toString('utf8');
  throw new TabulaError('invalid-argument', `${file} ${read.status === 'missing' ? 'does not exist' : read.problem}. Nothing was changed.`);
}

function readStdin(): string {
  try {
    return fs.readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

function parseValue(key: string, raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    // Convenience: a bare URI for the default printer; anything else is taken as a string and the
    // schema says what it should have been.
    return key === 'printers.default' ? { uri: raw } : raw;
  }
}

export async function runPrefsCommand(argv: string[], runningAgent: () => Promise<ApiClient | null>): Promise<number> {
  const flag = (name: string) => argv.includes(name);
  const onlyIdx = argv.indexOf('--only');
  const words = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--only');
  const [, sub, ...rest] = words; // words[0] is "prefs"

  let agent: ReturnType<typeof createAgent> | null = null;
  const client =
    (await runningAgent()) ??
    (() => {
      agent = createAgent({ features: ['prefs'] });
      return createInProcessClient(agent.router, agent.events);
    })();
  try {
    switch (sub) {
      case 'get': {
        const view = await client.call('prefs.get', {});
        for (const p of view.problems) console.error(`Problem: ${p}`);
        if (!rest[0]) {
          console.log(JSON.stringify(view.effective, null, 2));
          for (const [leaf, reason] of Object.entries(view.locks)) console.error(`Locked: ${leaf} — ${reason}`);
          return 0;
        }
        const key = rest[0];
        const section = key.split('.')[0] as 'printers' | 'displays' | 'network';
        if (!(section in view.effective)) throw new TabulaError('invalid-argument', `There is no preference "${key}".`);
        const value = key.includes('.') ? (view.effective[section] as Record<string, unknown>)[key.split('.')[1]!] : view.effective[section];
        if (value === undefined) throw new TabulaError('invalid-argument', `There is no preference "${key}".`);
        console.log(JSON.stringify(value, null, 2));
        for (const [leaf, reason] of Object.entries(view.locks)) if (leaf === key || leaf.startsWith(key + '.')) console.error(`Locked: ${leaf} — ${reason}`);
        return 0;
      }
      case 'set': {
        if (rest.length !== 2) throw new TabulaError('invalid-argument', 'Usage: tabula prefs set KEY VALUE');
        await client.call('prefs.set', { key: rest[0]!, value: parseValue(rest[0]!, rest[1]!) });
        console.log(`Saved ${rest[0]}. Run \`tabula prefs apply\` to use it now; it is applied at every login.`);
        return 0;
      }
      case 'apply': {
        const areas = onlyIdx >= 0 ? (argv[onlyIdx + 1] ?? '').split(',').filter(Boolean) : undefined;
        const report = await client.call('prefs.apply', { dryRun: flag('--dry-run'), areas: areas as PrefArea[] | undefined });
        console.log(flag('--json') ? JSON.stringify(report, null, 2) : formatReport(report));
        // "Not applied" (no such printer here, no display…) is not success either: scripts must see it.
        return report.items.some((i) => i.status === 'failed' || i.status === 'skipped') ? 1 : 0;
      }
      case 'export': {
        const doc = await client.call('prefs.export', {});
        const text = JSON.stringify(doc, null, 2) + '\n';
        if (rest[0]) {
          writeFileAtomic(rest[0], text, 0o600);
          console.log(`Preferences written to ${rest[0]}.`);
        } else process.stdout.write(text);
        return 0;
      }
      case 'import': {
        if (!rest[0]) throw new TabulaError('invalid-argument', 'Usage: tabula prefs import FILE (or - for stdin)');
        const text = rest[0] === '-' ? readStdin() : readImportFile(rest[0]);
        let doc: unknown;
        try {
          doc = JSON.parse(text);
        } catch (err) {
          throw new TabulaError('prefs-invalid', `${rest[0]} is not valid JSON (${(err as Error).message}). Nothing was changed.`);
        }
        const { skippedLocked } = await client.call('prefs.import', { doc });
        console.log('Preferences imported.');
        for (const k of skippedLocked) console.log(`Kept the fleet's value for ${k}: it is locked.`);
        return 0;
      }
      case 'secret': {
        const name = rest[0];
        if (!name) throw new TabulaError('invalid-argument', 'Usage: tabula prefs secret NAME  (the secret is read from stdin)');
        const view = await client.call('prefs.get', {});
        const profile = view.effective.network.profiles.find((p) => p.name === name);
        if (!profile) throw new TabulaError('invalid-argument', `There is no network profile named "${name}".`);
        const secret = readStdin().replace(/\r?\n$/, '');
        await client.call('prefs.saveNetworkProfile', { profile, secret });
        console.log(`The secret for "${name}" is in your keyring.`);
        return 0;
      }
      default:
        console.error(`Usage:\n${prefsUsage}`);
        return 64;
    }
  } finally {
    await (agent as ReturnType<typeof createAgent> | null)?.shutdown();
  }
}
