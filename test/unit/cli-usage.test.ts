// What `tabula help` and tabula(1) tell a person: every flag a command accepts is named in its usage
// line and on the man page, so that nothing the CLI takes is a secret (`tabula sync --verify` was).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { commands, helpFor } from '../../src-main/cli-commands';

const manSource = fs.readFileSync(path.join(__dirname, '../../assets/man/tabula.1'), 'utf8');

/** The man page's entry for one command, as plain text: from its heading line to the next entry. */
function manEntry(name: string): string | null {
  const lines = manSource.split('\n');
  const start = lines.findIndex((l) => (/^\.(BI|BR|B) /.test(l) && l.includes(`"tabula ${name} `)) || l === `.B tabula ${name}`);
  if (start < 0) return null;
  const end = lines.findIndex((l, i) => i > start && /^\.(TP|SS|SH)/.test(l));
  return lines
    .slice(start, end < 0 ? undefined : end)
    .join(' ')
    .replace(/\\f[BIRP]/g, '')
    .replace(/\\-/g, '-');
}

describe('tabula usage', () => {
  for (const c of commands.filter((c) => !c.name.startsWith('--'))) {
    const flags = [...(c.flags ?? []), ...(c.values ?? [])];
    if (!flags.length) continue;
    it(`\`tabula help ${c.name}\` names every flag it takes`, () => {
      // The synopsis, before the description (what an error message quotes as the usage).
      const synopsis = helpFor(c.name.split(' '))!.split('\n').find((l) => l.trim().startsWith(`tabula ${c.name}`))!.trim().split(/\s{3,}/)[0]!;
      for (const f of flags) expect(synopsis, f).toContain(f);
    });
  }

  for (const c of commands.filter((c) => !c.name.startsWith('--') && (c.flags?.length || c.values?.length))) {
    it(`tabula(1) names every flag of \`tabula ${c.name}\``, () => {
      const entry = manEntry(c.name);
      expect(entry, c.name).not.toBeNull();
      for (const f of [...(c.flags ?? []), ...(c.values ?? [])]) expect(entry, f).toContain(f);
    });
  }
});
